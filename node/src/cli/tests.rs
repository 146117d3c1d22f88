//! The node command line: parsing of its flags and what they mean.

use super::*;

#[test]
fn a_metrics_port_alone_means_loopback() {
    assert_eq!(
        parse_local_addr("9464").unwrap(),
        "127.0.0.1:9464".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        parse_local_addr("0.0.0.0:1").unwrap(),
        "0.0.0.0:1".parse::<SocketAddr>().unwrap()
    );
    assert!(parse_local_addr("localhost").unwrap_err().contains("9464"));
}

#[test]
fn metrics_without_a_value_serve_on_loopback() {
    let cli = Cli::try_parse_from(["tessera-node", "master", "--metrics"]).unwrap();
    let Command::Master { metrics, .. } = cli.command else {
        panic!("master");
    };
    assert_eq!(metrics, Some(DEFAULT_METRICS.parse().unwrap()));
}

fn work_args(args: &[&str]) -> WorkArgs {
    let mut all = vec!["tessera-node", "worker"];
    all.extend_from_slice(args);
    let Command::Worker { work, .. } = Cli::try_parse_from(all).unwrap().command else {
        panic!("worker");
    };
    work
}

#[test]
fn test_switches_are_refused_unless_enabled() {
    let key = tessera_proto::ClusterKey::generate();
    let mut config = WorkerConfig::new("", key);
    let work = work_args(&["--test-delay", "1s", "--synthetic"]);
    let e = work.apply_with(&mut config, false).unwrap_err().to_string();
    assert_eq!(
        e,
        "--synthetic, --test-delay are for tests only and refused unless TESSERA_TEST_SWITCHES=1 is set"
    );
    assert!(!config.synthetic && config.test_delay.is_none());
    work.apply_with(&mut config, true).unwrap();
    assert!(config.synthetic);
    assert_eq!(config.test_delay, Some(Duration::from_secs(1)));
    // Ordinary options need nothing.
    work_args(&["--threads", "2"])
        .apply_with(&mut config, false)
        .unwrap();
}

#[test]
fn test_switches_are_not_in_the_help() {
    use clap::CommandFactory;
    for sub in ["worker", "dev"] {
        let mut cmd = Cli::command();
        let help = cmd
            .find_subcommand_mut(sub)
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("--drain-grace"), "{help}");
        for hidden in [
            "--test-delay",
            "--test-crash-on",
            "--test-panic-on",
            "--synthetic",
        ] {
            assert!(
                !help.contains(hidden),
                "{sub} --help shows {hidden}:\n{help}"
            );
        }
    }
}

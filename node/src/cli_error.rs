//! How the binaries print an error that ends them: one line, `error: ` and
//! the error with its causes, each cause once.

/// The error and its causes joined by `: `, skipping a cause whose text the
/// line already holds (many errors name their source in their own message,
/// e.g. "cannot read the cluster key file F: No such file or directory").
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct Named {
        path: &'static str,
        source: std::io::Error,
    }

    fn not_found() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
    }

    #[test]
    fn a_cause_the_message_already_names_is_not_repeated() {
        let e = anyhow::Error::new(Named {
            path: "/k",
            source: not_found(),
        });
        assert_eq!(one_line(&e), "cannot read /k: no such file");
    }

    #[test]
    fn causes_the_message_does_not_name_are_appended_in_order() {
        let e: anyhow::Error = Err::<(), _>(not_found())
            .context("opening the record")
            .context("starting the master")
            .unwrap_err();
        assert_eq!(
            one_line(&e),
            "starting the master: opening the record: no such file"
        );
    }
}

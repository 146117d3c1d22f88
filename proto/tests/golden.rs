//! Golden bytes: the exact encoding of every message is pinned here, so an
//! accidental wire change fails this test. A deliberate change updates the
//! bytes *and* bumps `PROTOCOL_VERSION`.

use tessera_proto::{
    ClusterInfo, ErrorCode, EventEntry, FailureKind, Hello, HelloReply, LeaseRef, Msg,
    PROTOCOL_VERSION, Refusal, Role, TaskCounts, TaskEvent, TaskId, TaskInfo, TaskState,
    Throughput, Welcome, WorkerInfo, wire,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn info() -> TaskInfo {
    TaskInfo {
        task: TaskId(7),
        name: "a.png".into(),
        state: TaskState::Failed {
            kind: FailureKind::Corrupt,
            reason: "bad".into(),
        },
        input_len: 300,
        output_len: None,
        attempts: 1,
        worker: Some("w".into()),
    }
}

fn messages() -> Vec<(&'static str, Msg)> {
    let t = TaskId(7);
    vec![
        (
            "Submit",
            Msg::Submit {
                req: 1,
                name: "a.png".into(),
                len: 300,
                checksum: 0xfeed,
                key: 5,
                submitter: 0xabc,
            },
        ),
        ("Status", Msg::Status { req: 2, task: t }),
        ("Wait", Msg::Wait { req: 3, task: t }),
        ("Fetch", Msg::Fetch { req: 4, task: t }),
        ("Submitted", Msg::Submitted { req: 1, task: t }),
        (
            "Info",
            Msg::Info {
                req: 2,
                info: info(),
            },
        ),
        (
            "Result",
            Msg::Result {
                req: 4,
                task: t,
                len: 70_000,
                checksum: 0xfeed,
            },
        ),
        ("Ready", Msg::Ready { credits: 3 }),
        (
            "Done",
            Msg::Done {
                task: t,
                attempt: 1,
                len: 300,
                checksum: 0xfeed,
            },
        ),
        (
            "Failed",
            Msg::Failed {
                task: t,
                attempt: 2,
                kind: FailureKind::Unsupported,
                reason: "x".into(),
            },
        ),
        (
            "Assign",
            Msg::Assign {
                task: t,
                attempt: 1,
                name: "a.png".into(),
                len: 300,
                checksum: 0xfeed,
            },
        ),
        ("Accepted", Msg::Accepted { task: t }),
        ("Chunk", Msg::Chunk { stream: 9 }),
        (
            "Error",
            Msg::Error {
                req: Some(5),
                code: ErrorCode::NotFound,
                message: "no task 7".into(),
            },
        ),
        (
            "Heartbeat",
            Msg::Heartbeat {
                leases: vec![LeaseRef {
                    task: t,
                    attempt: 2,
                }],
            },
        ),
        (
            "Started",
            Msg::Started {
                task: t,
                attempt: 2,
            },
        ),
        (
            "Release",
            Msg::Release {
                task: t,
                attempt: 2,
            },
        ),
        (
            "Released",
            Msg::Released {
                task: t,
                attempt: 2,
            },
        ),
        (
            "Drop",
            Msg::Drop {
                task: t,
                attempt: 2,
            },
        ),
        ("Draining", Msg::Draining),
        (
            "Capacity",
            Msg::Capacity {
                threads: 4,
                synthetic: true,
            },
        ),
        ("GetHistory", Msg::GetHistory { req: 6, task: t }),
        (
            "History",
            Msg::History {
                req: 6,
                task: t,
                events: vec![
                    EventEntry {
                        at_ms: 1_000,
                        event: TaskEvent::Submitted {
                            name: "a".into(),
                            len: 3,
                            checksum: 9,
                        },
                    },
                    EventEntry {
                        at_ms: 2_000,
                        event: TaskEvent::Completed {
                            attempt: 1,
                            worker: "w".into(),
                            len: 4,
                            checksum: 8,
                            duration_ms: 20,
                        },
                    },
                ],
            },
        ),
        ("Delete", Msg::Delete { req: 7, task: t }),
        ("Deleted", Msg::Deleted { req: 7, task: t }),
        (
            "Confirm",
            Msg::Confirm {
                req: 10,
                task: t,
                submitter: 0xabc,
            },
        ),
        ("Cancel", Msg::Cancel { req: 8, task: t }),
        ("GetCluster", Msg::GetCluster { req: 9 }),
        (
            "Cluster",
            Msg::Cluster {
                req: 9,
                cluster: cluster(),
            },
        ),
        ("Ping", Msg::Ping { seq: 3 }),
        ("Pong", Msg::Pong { seq: 3 }),
        ("Confirmed", Msg::Confirmed { req: 10, task: t }),
        ("HangingUp", Msg::HangingUp { silent_ms: 600 }),
    ]
}

fn cluster() -> ClusterInfo {
    ClusterInfo {
        master_id: "m".into(),
        uptime_ms: 1_000,
        tasks: TaskCounts {
            queued: 1,
            running: 2,
            done: 3,
            failed: 4,
            cancelled: 5,
        },
        workers: vec![WorkerInfo {
            name: "w".into(),
            addr: "a".into(),
            threads: 2,
            running: 1,
            prefetched: 1,
            done: 3,
            failed: 0,
            heartbeat_age_ms: Some(250),
            draining: false,
            synthetic: true,
        }],
        workers_total: 1,
        throughput: Throughput {
            window_ms: 10_000,
            images: 3,
            bytes: 300,
            per_second: vec![1, 0, 2],
        },
    }
}

const GOLDEN_MSGS: &[(&str, &str)] = &[
    ("Status", "010207"),
    ("Wait", "020307"),
    ("Fetch", "030407"),
    ("Submitted", "040107"),
    ("Ready", "0703"),
    ("Failed", "090702000178"),
    ("Accepted", "0b07"),
    ("Chunk", "0c09"),
    ("Error", "0d010503096e6f207461736b2037"),
    ("Info", "05020705612e706e67030103626164fb2c010001010177"),
    ("Heartbeat", "0e010702"),
    ("Started", "0f0702"),
    ("Release", "100702"),
    ("Released", "110702"),
    ("Drop", "120702"),
    ("Draining", "13"),
    ("Capacity", "140401"),
    ("Submit", "000105612e706e67fb2c01fbedfe05fbbc0a"),
    ("Result", "060407fc70110100fbedfe"),
    ("Done", "080701fb2c01fbedfe"),
    ("Assign", "0a070105612e706e67fb2c01fbedfe"),
    ("GetHistory", "150607"),
    ("History", "16060702fbe8030001610309fbd00704010177040814"),
    ("Delete", "170707"),
    ("Deleted", "180707"),
    ("Confirm", "190a07fbbc0a"),
    ("Cancel", "1a0807"),
    ("GetCluster", "1b09"),
    (
        "Cluster",
        "1c09016dfbe80301020304050101770161020101030001fa000101fb102703fb2c0103010002",
    ),
    ("Ping", "1d03"),
    ("Pong", "1e03"),
    ("Confirmed", "1f0a07"),
    ("HangingUp", "20fb5802"),
];

#[test]
fn every_message_encodes_to_its_golden_bytes() {
    let mut mismatches = Vec::new();
    let msgs = messages();
    for (name, msg) in &msgs {
        let got = hex(&wire::encode(msg).unwrap());
        match GOLDEN_MSGS.iter().find(|(n, _)| n == name) {
            Some((_, want)) if *want == got => {}
            Some((_, want)) => mismatches.push(format!("{name}: want {want}, got {got}")),
            None => mismatches.push(format!("(\"{name}\", \"{got}\"),")),
        }
        assert_eq!(msg.name(), *name);
        // And they decode back to the same value.
        let back: Msg = wire::decode_exact(&wire::encode(msg).unwrap()).unwrap();
        assert_eq!(&back, msg);
    }
    assert!(
        mismatches.is_empty(),
        "wire encoding changed:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(
        GOLDEN_MSGS.len(),
        msgs.len(),
        "every message needs golden bytes"
    );
}

#[test]
fn handshake_encodes_to_its_golden_bytes() {
    assert_eq!(
        PROTOCOL_VERSION, 10,
        "bump the golden bytes with the version"
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "hello",
            wire::encode(&Hello::new(Role::Worker, "w1")).unwrap(),
        ),
        (
            "accept",
            wire::encode(&HelloReply::Accept(vec![0xbb; 3])).unwrap(),
        ),
        (
            "confirmation",
            tessera_proto::handshake::CONFIRMATION.to_vec(),
        ),
        (
            "welcome",
            wire::encode(&Welcome {
                version: 4,
                master_id: "m".into(),
                heartbeat_interval_ms: 1000,
                lease_timeout_ms: 10_000,
            })
            .unwrap(),
        ),
        (
            "version mismatch",
            wire::encode(&HelloReply::Refused(Refusal::VersionMismatch {
                master: 1,
                peer: 2,
            }))
            .unwrap(),
        ),
        (
            "bad magic",
            wire::encode(&HelloReply::Refused(Refusal::BadMagic)).unwrap(),
        ),
        (
            "malformed",
            wire::encode(&HelloReply::Refused(Refusal::Malformed("m".into()))).unwrap(),
        ),
        (
            "busy",
            wire::encode(&HelloReply::Refused(Refusal::Busy { limit: 10 })).unwrap(),
        ),
        (
            "unauthorized",
            wire::encode(&HelloReply::Refused(Refusal::Unauthorized)).unwrap(),
        ),
        (
            "timeout",
            wire::encode(&HelloReply::Refused(Refusal::Timeout { after_ms: 1000 })).unwrap(),
        ),
    ];
    let got: Vec<(&str, String)> = cases.iter().map(|(n, b)| (*n, hex(b))).collect();
    let want: Vec<(&str, String)> = GOLDEN_HANDSHAKE
        .iter()
        .map(|(n, h)| (*n, h.to_string()))
        .collect();
    assert_eq!(got, want, "handshake encoding changed");
}

/// The handshake must start with the raw magic bytes, then the version.
#[test]
fn hello_starts_with_magic_then_version() {
    let bytes = wire::encode(&Hello::new(Role::Client, "c")).unwrap();
    assert_eq!(&bytes[..4], b"TSRA");
    assert_eq!(bytes[4], PROTOCOL_VERSION as u8);
}

/// The refusals up to `busy` are byte-identical to version 1's: peers of
/// every version can read them (a peer of another version gets `version
/// mismatch` or `busy` before anything else). The Noise messages inside
/// `accept` are pinned by `noise_handshake_and_records_are_pinned`.
const GOLDEN_HANDSHAKE: &[(&str, &str)] = &[
    ("hello", "545352410a01027731"),
    ("accept", "0003bbbbbb"),
    (
        "confirmation",
        "746573736572612068616e647368616b6520636f6e6669726d6564",
    ),
    ("welcome", "04016dfbe803fb1027"),
    ("version mismatch", "01010102"),
    ("bad magic", "0100"),
    ("malformed", "0102016d"),
    ("busy", "01030a"),
    ("unauthorized", "0104"),
    ("timeout", "0105fbe803"),
];

/// Variants added to enums that travel inside messages and the durable
/// record go at the end, so every earlier encoding stays as it was.
#[test]
fn appended_enum_variants_take_the_next_index() {
    assert_eq!(hex(&wire::encode(&FailureKind::Internal).unwrap()), "04");
    assert_eq!(hex(&wire::encode(&FailureKind::Cancelled).unwrap()), "05");
    assert_eq!(hex(&wire::encode(&FailureKind::Crashes).unwrap()), "06");
    assert_eq!(hex(&wire::encode(&FailureKind::TimedOut).unwrap()), "07");
    let recovered = TaskEvent::Recovered { attempt: 1 };
    assert_eq!(hex(&wire::encode(&recovered).unwrap()), "0901");
    let cancelled = TaskEvent::Cancelled {
        attempt: Some(2),
        worker: Some("w".into()),
    };
    assert_eq!(hex(&wire::encode(&cancelled).unwrap()), "0a0102010177");
    let queued = TaskEvent::Cancelled {
        attempt: None,
        worker: None,
    };
    assert_eq!(hex(&wire::encode(&queued).unwrap()), "0a0000");
    let joined = TaskEvent::Joined { submitter: 3 };
    assert_eq!(hex(&wire::encode(&joined).unwrap()), "0b03");
    let confirmed = TaskEvent::Confirmed {
        submitter: 3,
        waiting: 1,
    };
    assert_eq!(hex(&wire::encode(&confirmed).unwrap()), "0c0301");
}

/// The whole Noise stack pinned: pattern, prologue (the `Hello` frame),
/// the PSK derived from the cluster key, X25519, AES-256-GCM and the record
/// framing. Seeded ephemeral keys make the bytes fixed; a change to any
/// part breaks every cluster of mixed builds, so it must bump the version.
#[test]
fn noise_handshake_and_records_are_pinned() {
    use tessera_proto::{ClusterKey, determinism::Seeded, noise, secure::SecureWrite};
    use tokio::io::AsyncWriteExt;

    let _seeded = Seeded::new(8);
    let key = ClusterKey::from_bytes([0x11; 32]);
    let hello = wire::encode(&Hello::new(Role::Worker, "w1")).unwrap();
    let mut peer = noise::initiator(&key, &hello);
    let mut master = noise::responder(&key, &hello);
    let mut first = vec![0; 64];
    let n = peer.write_message(&[], &mut first).unwrap();
    first.truncate(n);
    master.read_message(&first, &mut [0; 64]).unwrap();
    let mut accept = vec![0; 128];
    let n = master.write_message(b"welcome", &mut accept).unwrap();
    accept.truncate(n);
    peer.read_message(&accept, &mut [0; 128]).unwrap();
    let keys = std::sync::Arc::new(noise::transport(peer).unwrap());
    let mut out = SecureWrite::new(Vec::new(), keys);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        out.write_all(b"tessera").await.unwrap();
        out.flush().await.unwrap();
        out.write_all(b"!").await.unwrap();
        out.flush().await.unwrap();
    });
    let got = vec![
        ("first message", hex(&first)),
        ("accept", hex(&accept)),
        ("records", hex(out.get_ref())),
    ];
    let want: Vec<(&str, String)> = GOLDEN_NOISE
        .iter()
        .map(|(n, h)| (*n, h.to_string()))
        .collect();
    assert_eq!(got, want, "the Noise handshake or the record layer changed");
}

/// Seed 8, key 0x11 × 32, `Hello` of worker "w1": the peer's `-> psk, e`
/// (its ephemeral key, then the tag of an empty payload), the master's
/// `<- e, ee` carrying "welcome", and the peer's first two records
/// ("tessera", "!"): a 2-byte length, then ciphertext and tag.
const GOLDEN_NOISE: &[(&str, &str)] = &[
    (
        "first message",
        concat!(
            "f4fbf328ae0881ebf1d65bdbc5e2203727085d1904de8c11c0f126a91fa99101",
            "8ab2d7547d8faaf0b38bbbb9bf41cced"
        ),
    ),
    (
        "accept",
        concat!(
            "808653a872f437a89ddfd297833eaed727170692b9d96482d04537932be1472d",
            "46fd4ef2d2ece7d83d0271fdb84bb0ba976de8c0ef8333"
        ),
    ),
    (
        "records",
        concat!(
            "0017",
            "8853d7b96fff354bc12da30264d5b92d18fd9383a312f8",
            "0011",
            "34da99018d3df1373d7d46842b310b427f"
        ),
    ),
];

//! The current state of a task as the durable record keeps it: derived from
//! the task's events and written in the same transaction as each event.
//!
//! **Format versions.** A row is stored as one format byte followed by its
//! bincode encoding ([`encode_row`]); the `meta` table says which format
//! the rows of a record are in. Format 1 (before the byte existed) had no
//! submitters: [`decode_legacy_row`] reads it, and opening such a record
//! rewrites its rows once in the current format ([`ROW_FORMAT`]). The bytes
//! of each format are pinned by a golden test below.

use serde::{Deserialize, Serialize};
use tessera_proto::{FailureKind, wire};

/// The format rows are written in.
pub const ROW_FORMAT: u8 = 3;

/// One task's durable current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRow {
    pub name: String,
    pub input_len: u64,
    pub input_checksum: u64,
    /// The idempotency key it was submitted under.
    pub key: u128,
    /// Wall clock, milliseconds since the Unix epoch.
    pub submitted_ms: u64,
    /// Hand-outs so far (the last fencing token used).
    pub attempts: u32,
    /// Attempts that ended by worker death or lease expiry.
    pub lost: u32,
    /// How lost attempts ended, for the failure reason.
    pub history: Vec<String>,
    pub state: RowState,
    /// Lost attempts that cast suspicion on the image (see
    /// `scheduler/blame.rs`): it runs alone from then on.
    pub strikes: u32,
    /// Lost attempts that point at the image alone.
    pub evidence: u32,
    /// Everyone the task was answered `Submitted` to (format 2). The result
    /// is kept until each has confirmed. Empty for a format-1 row: then any
    /// confirmation removes the result, as it did then.
    pub submitters: Vec<Submitter>,
    /// Milliseconds its attempts ran on workers, from `Started` to their end
    /// (format 3; 0 in older rows): how long a worker's death could have
    /// struck it (`scheduler/background.rs`).
    pub exposure_ms: u64,
}

/// One submitter of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitter {
    /// Chosen by the client (`Submit::submitter`).
    pub id: u64,
    /// It confirmed its download.
    pub confirmed: bool,
}

/// Where a task stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowState {
    Queued,
    /// Leased when last recorded; after a restart it is queued again.
    Leased {
        attempt: u32,
    },
    Done {
        attempt: u32,
        output_len: u64,
        output_checksum: u64,
        done_ms: u64,
        worker: String,
        /// The result's files were removed (confirmed download or retention).
        removed: bool,
    },
    Failed {
        kind: FailureKind,
        reason: String,
    },
}

/// Why a stored row cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("row format {found}, this master reads format {ROW_FORMAT} (and 1 and 2)")]
    Format { found: u8 },
    #[error("empty row")]
    Empty,
    #[error(transparent)]
    Decode(#[from] tessera_proto::DecodeError),
    #[error(transparent)]
    Encode(#[from] tessera_proto::wire::EncodeError),
}

/// A row in the current format: [`ROW_FORMAT`], then its bincode encoding.
pub fn encode_row(row: &TaskRow) -> Result<Vec<u8>, RowError> {
    let mut out = vec![ROW_FORMAT];
    wire::encode_into(row, &mut out)?;
    Ok(out)
}

/// A row written by [`encode_row`], in this format or format 2.
pub fn decode_row(bytes: &[u8]) -> Result<TaskRow, RowError> {
    match bytes.split_first() {
        Some((&ROW_FORMAT, rest)) => Ok(wire::decode_exact(rest)?),
        Some((&2, rest)) => {
            let v2: TaskRowV2 = wire::decode_exact(rest)?;
            Ok(TaskRow {
                strikes: v2.strikes,
                evidence: v2.evidence,
                submitters: v2.submitters,
                ..from_v1(v2.v1)
            })
        }
        Some((&found, _)) => Err(RowError::Format { found }),
        None => Err(RowError::Empty),
    }
}

/// A format-1 row (no format byte, no submitters).
pub fn decode_legacy_row(bytes: &[u8]) -> Result<TaskRow, RowError> {
    Ok(from_v1(wire::decode_exact(bytes)?))
}

/// A row of format 1's fields, with nothing known of the later ones.
fn from_v1(v1: TaskRowV1) -> TaskRow {
    TaskRow {
        name: v1.name,
        input_len: v1.input_len,
        input_checksum: v1.input_checksum,
        key: v1.key,
        submitted_ms: v1.submitted_ms,
        attempts: v1.attempts,
        lost: v1.lost,
        history: v1.history,
        state: v1.state,
        strikes: 0,
        evidence: 0,
        submitters: Vec::new(),
        exposure_ms: 0,
    }
}

/// The row of format 2, as it was written (after its format byte): format
/// 1's fields, then these (bincode writes a nested struct's fields in line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TaskRowV2 {
    v1: TaskRowV1,
    strikes: u32,
    evidence: u32,
    submitters: Vec<Submitter>,
}

/// The row of format 1, as it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TaskRowV1 {
    name: String,
    input_len: u64,
    input_checksum: u64,
    key: u128,
    submitted_ms: u64,
    attempts: u32,
    lost: u32,
    history: Vec<String>,
    state: RowState,
}

/// Writing rows the way formats 1 and 2 did, for tests of the migration.
#[cfg(test)]
pub mod tests_support {
    use super::*;

    fn v1(row: &TaskRow) -> TaskRowV1 {
        TaskRowV1 {
            name: row.name.clone(),
            input_len: row.input_len,
            input_checksum: row.input_checksum,
            key: row.key,
            submitted_ms: row.submitted_ms,
            attempts: row.attempts,
            lost: row.lost,
            history: row.history.clone(),
            state: row.state.clone(),
        }
    }

    pub fn encode_v1(row: &TaskRow) -> Vec<u8> {
        wire::encode(&v1(row)).unwrap()
    }

    pub fn encode_v2(row: &TaskRow) -> Vec<u8> {
        let v2 = TaskRowV2 {
            v1: v1(row),
            strikes: row.strikes,
            evidence: row.evidence,
            submitters: row.submitters.clone(),
        };
        let mut out = vec![2];
        wire::encode_into(&v2, &mut out).unwrap();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn done_row() -> TaskRow {
        TaskRow {
            name: "a.png".into(),
            input_len: 300,
            input_checksum: 0xfeed,
            key: 5,
            submitted_ms: 1_000,
            attempts: 2,
            lost: 1,
            history: vec!["x".into()],
            state: RowState::Done {
                attempt: 2,
                output_len: 70_000,
                output_checksum: 0xbeef,
                done_ms: 2_000,
                worker: "w".into(),
                removed: false,
            },
            strikes: 3,
            evidence: 1,
            submitters: vec![
                Submitter {
                    id: 0xabc,
                    confirmed: true,
                },
                Submitter {
                    id: 0,
                    confirmed: false,
                },
            ],
            exposure_ms: 4_000,
        }
    }

    /// Format 2, as the master of protocol 7 wrote it.
    const GOLDEN_V2: &str = concat!(
        "02",             // format
        "05612e706e67",   // name
        "fb2c01",         // input_len
        "fbedfe",         // input_checksum
        "05",             // key
        "fbe803",         // submitted_ms
        "02",             // attempts
        "01",             // lost
        "010178",         // history
        "02",             // Done
        "02",             // attempt
        "fc70110100",     // output_len
        "fbefbe",         // output_checksum
        "fbd007",         // done_ms
        "0177",           // worker
        "00",             // removed
        "03",             // strikes
        "01",             // evidence
        "02fbbc0a010000", // submitters
    );

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// Format 3, byte for byte: format 2's fields, then `exposure_ms`
    /// (4,000: `fba00f`). A change to the row's encoding must bump
    /// [`ROW_FORMAT`] (and keep reading the older formats).
    fn golden_v3() -> String {
        format!("03{}fba00f", &GOLDEN_V2[2..])
    }

    #[test]
    fn a_row_encodes_to_its_golden_bytes_and_back() {
        let bytes = encode_row(&done_row()).unwrap();
        assert_eq!(hex(&bytes), golden_v3());
        assert_eq!(decode_row(&bytes).unwrap(), done_row());
    }

    #[test]
    fn a_format_2_row_still_loads_with_no_exposure() {
        let mut want = done_row();
        want.exposure_ms = 0;
        assert_eq!(decode_row(&unhex(GOLDEN_V2)).unwrap(), want);
    }

    /// A format-1 row, as the master of protocol 6 wrote it.
    const GOLDEN_V1: &str = concat!(
        "05612e706e67fb2c01fbedfe05fbe8030201010178",
        "0202fc70110100fbefbefbd007017700",
    );

    #[test]
    fn a_format_1_row_still_loads_with_no_submitters_and_no_blame() {
        let bytes: Vec<u8> = (0..GOLDEN_V1.len() / 2)
            .map(|i| u8::from_str_radix(&GOLDEN_V1[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let mut want = done_row();
        want.submitters.clear();
        (want.strikes, want.evidence, want.exposure_ms) = (0, 0, 0);
        assert_eq!(decode_legacy_row(&bytes).unwrap(), want);
        // And it is not mistaken for a row of the current format.
        assert!(decode_row(&bytes).is_err());
    }

    #[test]
    fn an_unknown_format_is_a_typed_error() {
        let mut bytes = encode_row(&done_row()).unwrap();
        bytes[0] = 9;
        assert!(matches!(
            decode_row(&bytes),
            Err(RowError::Format { found: 9 })
        ));
    }
}

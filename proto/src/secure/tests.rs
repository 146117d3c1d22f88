//! The record layer's tests: round trips, records split at the Noise
//! limit, tampering, buffer sizes and where a stream may end.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use bytes::BytesMut;

use super::*;
use crate::{ClusterKey, Msg, ProtoError, noise};

/// Both sides' keys after an in-memory handshake.
fn pair() -> (Keys, Keys) {
    let key = ClusterKey::from_bytes([3; 32]);
    let (i, r) = noise::handshake_in_memory(&key, b"hello").unwrap();
    (Arc::new(i), Arc::new(r))
}

/// The records `writes` become, each write flushed on its own.
async fn sealed(keys: Keys, writes: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut w = SecureWrite::new(Vec::new(), keys);
    let mut records = Vec::new();
    for data in writes {
        w.write_all(data).await.unwrap();
        w.flush().await.unwrap();
        let all = std::mem::take(w.get_mut());
        let mut rest = &all[..];
        while !rest.is_empty() {
            let len = 2 + usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            records.push(rest[..len].to_vec());
            rest = &rest[len..];
        }
    }
    records
}

async fn read_all(keys: Keys, wire: Vec<u8>) -> (Vec<u8>, io::Result<usize>) {
    let mut r = SecureRead::new(&wire[..], keys, "test peer", BytesMut::new());
    let mut out = Vec::new();
    let end = r.read_to_end(&mut out).await;
    (out, end)
}

#[tokio::test]
async fn records_round_trip_and_a_large_write_is_split_at_the_noise_limit() {
    let (a, b) = pair();
    let big: Vec<u8> = (0..200_000).map(|i| (i % 253) as u8).collect();
    let records = sealed(a, &[b"small", &big]).await;
    assert_eq!(records.len(), 1 + big.len().div_ceil(MAX_RECORD_PLAINTEXT));
    assert!(records.iter().all(|r| r.len() <= 2 + MAX_MESSAGE));
    let (out, end) = read_all(b, records.concat()).await;
    end.unwrap();
    assert_eq!(out, [&b"small"[..], &big].concat());
}

/// A write of whole records is sealed straight from the caller's buffer;
/// small writes go through `plain`. Both make the same records, and
/// reading them into a buffer with room for a whole record (opened in
/// place) or into a small one (through `open`) gives the same bytes.
#[tokio::test]
async fn whole_writes_and_pieces_make_the_same_records_and_big_and_small_reads_the_same_bytes() {
    let data: Vec<u8> = (0..3 * MAX_RECORD_PLAINTEXT + 12_345)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let (a, b) = pair();
    let whole = sealed(a.clone(), &[&data]).await;
    let mut w = SecureWrite::new(Vec::new(), a);
    for piece in data.chunks(1000) {
        w.write_all(piece).await.unwrap();
    }
    w.flush().await.unwrap();
    let pieces = std::mem::take(w.get_mut());
    assert_eq!(whole.concat(), pieces, "the same records either way");

    let mut big = SecureRead::new(&pieces[..], b.clone(), "peer", BytesMut::new());
    let mut in_place = vec![0u8; data.len()];
    big.read_exact(&mut in_place).await.unwrap();
    assert_eq!(in_place, data);
    assert!(big.open.is_empty());
    let mut small = SecureRead::new(&pieces[..], b, "peer", BytesMut::new());
    let mut through = Vec::new();
    let mut buf = [0u8; 777];
    loop {
        match small.read(&mut buf).await.unwrap() {
            0 => break,
            n => through.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(through, data);
}

// Tampering is caught by the AEAD, which the benchmarking build
// `unencrypted-records` leaves out on purpose.
#[cfg(not(feature = "unencrypted-records"))]
#[tokio::test]
async fn a_modified_replayed_reordered_or_dropped_record_ends_the_stream() {
    let (a, b) = pair();
    let records = sealed(a, &[b"one", b"two", b"three"]).await;
    let flipped = {
        let mut r = records.clone();
        r[1][5] ^= 1;
        r
    };
    let cases = [
        ("modified", flipped),
        ("replayed", vec![records[0].clone(), records[0].clone()]),
        ("reordered", vec![records[1].clone(), records[0].clone()]),
        ("dropped", vec![records[0].clone(), records[2].clone()]),
    ];
    for (what, wire) in cases {
        let wire = wire.concat();
        let mut r = SecureRead::new(&wire[..], b.clone(), "peer", BytesMut::new());
        let mut got = Vec::new();
        let err = loop {
            let mut buf = [0u8; 64];
            match r.read(&mut buf).await {
                Ok(0) => panic!("{what}: read to the end without an error"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break e,
            }
        };
        let tampered = Tampered::from_io(&err).unwrap_or_else(|| panic!("{what}: {err}"));
        let at = if what == "reordered" { 0 } else { 1 };
        assert_eq!(tampered.record, at, "{what}");
        assert_eq!(got, if at == 0 { &b""[..] } else { b"one" }, "{what}");
        // And it stays failed.
        assert!(r.read(&mut [0u8; 8]).await.is_err(), "{what}");
        assert!(matches!(ProtoError::from(err), ProtoError::Tampered(_)));
    }
}

// Tampering is caught by the AEAD, which the benchmarking build
// `unencrypted-records` leaves out on purpose.
#[cfg(not(feature = "unencrypted-records"))]
#[tokio::test]
async fn a_frame_whose_second_record_fails_is_never_decoded() {
    let (a, b) = pair();
    let frame = {
        let mut w = crate::FrameWriter::new(SecureWrite::new(Vec::new(), a), 1 << 20);
        let big = bytes::Bytes::from(vec![9u8; 100_000]);
        w.send_stream(1, &big).await.unwrap();
        std::mem::take(w.get_mut().get_mut())
    };
    let mut wire = frame.clone();
    let last = wire.len() - 1;
    wire[last] ^= 0x80; // in the last record's tag
    let mut reader = crate::FrameReader::new(
        SecureRead::new(&wire[..], b.clone(), "peer", BytesMut::new()),
        1 << 20,
    );
    let first = reader.recv().await;
    assert!(matches!(first, Err(ProtoError::Tampered(_))), "{first:?}");
    let mut reader = crate::FrameReader::new(
        SecureRead::new(&frame[..], b, "peer", BytesMut::new()),
        1 << 20,
    );
    assert_eq!(reader.recv().await.unwrap().msg, Msg::Chunk { stream: 1 });
}

/// An idle connection (small control records) holds kilobytes, not a
/// record's worth per direction: the master has up to 1,024 of them.
#[tokio::test]
async fn small_records_keep_the_buffers_small() {
    let (a, b) = pair();
    let mut w = SecureWrite::new(Vec::new(), a);
    w.write_all(b"heartbeat").await.unwrap();
    w.flush().await.unwrap();
    assert!(w.plain.capacity() < 1024, "{}", w.plain.capacity());
    let wire = std::mem::take(w.get_mut());
    let mut r = SecureRead::new(&wire[..], b, "peer", BytesMut::new());
    let mut got = [0u8; 9];
    r.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"heartbeat");
    assert!(r.sealed.capacity() <= 8192, "{}", r.sealed.capacity());
    assert!(r.open.capacity() <= 8192, "{}", r.open.capacity());
}

#[tokio::test]
async fn a_stream_cut_inside_a_record_is_an_error_and_between_records_a_clean_end() {
    let (a, b) = pair();
    let wire = sealed(a, &[b"one", b"two"]).await.concat();
    let (out, end) = read_all(b.clone(), wire[..wire.len() - 3].to_vec()).await;
    assert_eq!(out, b"one");
    assert_eq!(end.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    let (out, end) = read_all(b, wire).await;
    assert_eq!((out, end.unwrap()), (b"onetwo".to_vec(), 6));
}

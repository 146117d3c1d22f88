//! The Noise protocol every connection runs: `Noise_NNpsk0_25519_AESGCM_SHA256`
//! (snow), with a pre-shared key derived from the cluster key.
//!
//! * `NN`: neither side has a static key; each sends a fresh ephemeral
//!   X25519 key, so every connection has its own keys (forward secrecy: a
//!   stolen cluster key does not decrypt a recorded connection).
//! * `psk0`: the cluster key (through `ClusterKey::psk`) is mixed in
//!   before the first message, so the peer's first message already proves it
//!   holds the key (a master without it cannot decrypt it: `Unauthorized`),
//!   and the master's answer proves the master holds it.
//! * The prologue binds the cleartext `Hello` frame (magic, version, role,
//!   node id) into the handshake: changing one byte of it in transit fails
//!   the handshake.
//! * AES-256-GCM (ring, AES-NI) for records, SHA-256 for hashing.
//!
//! Randomness (the ephemeral keys) comes from [`crate::determinism`], so a
//! seeded simulation replays connections exactly; elsewhere it is the
//! operating system's generator.

use snow::{
    HandshakeState, StatelessTransportState,
    params::{CipherChoice, DHChoice, HashChoice},
    resolvers::{CryptoResolver, DefaultResolver, RingResolver},
    types::{Cipher, Dh, Hash, Random},
};

use crate::key::ClusterKey;

/// The Noise protocol name.
pub const PATTERN: &str = "Noise_NNpsk0_25519_AESGCM_SHA256";

/// Largest Noise message (the spec's limit), ciphertext and tag included.
pub const MAX_MESSAGE: usize = 65_535;

/// The authentication tag on every message.
pub const TAG_LEN: usize = 16;

/// The peer's first handshake message: its ephemeral key and the tag of an
/// empty payload.
pub const FIRST_MESSAGE_LEN: usize = 32 + TAG_LEN;

/// ring's AES-GCM and SHA-256, curve25519-dalek's X25519, and our random
/// source.
struct Resolver;

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(Rng))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        RingResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        RingResolver.resolve_cipher(choice)
    }
}

struct Rng;

impl Random for Rng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        crate::determinism::fill(dest);
        Ok(())
    }
}

/// The prologue both sides mix in: a label and the `Hello` frame's bytes.
fn prologue(hello_frame: &[u8]) -> Vec<u8> {
    let mut p = b"tessera noise prologue\0".to_vec();
    p.extend_from_slice(hello_frame);
    p
}

fn builder<'a>(key: &ClusterKey, prologue: &'a [u8], psk: &'a [u8; 32]) -> snow::Builder<'a> {
    let _ = key;
    snow::Builder::with_resolver(
        PATTERN.parse().expect("the pattern name is valid"),
        Box::new(Resolver),
    )
    .prologue(prologue)
    .expect("one prologue")
    .psk(0, psk)
    .expect("one psk at position 0")
}

/// The connecting peer's side, after sending `hello_frame`.
pub fn initiator(key: &ClusterKey, hello_frame: &[u8]) -> HandshakeState {
    let (prologue, psk) = (prologue(hello_frame), key.psk());
    builder(key, &prologue, &psk)
        .build_initiator()
        .expect("a valid configuration")
}

/// The master's side, after receiving `hello_frame`.
pub fn responder(key: &ClusterKey, hello_frame: &[u8]) -> HandshakeState {
    let (prologue, psk) = (prologue(hello_frame), key.psk());
    builder(key, &prologue, &psk)
        .build_responder()
        .expect("a valid configuration")
}

/// The connection's keys once the handshake is over, one per direction,
/// each used with an explicit counter (so the two halves of a connection
/// need no lock between them).
pub fn transport(state: HandshakeState) -> Result<StatelessTransportState, snow::Error> {
    state.into_stateless_transport_mode()
}

/// Both ends' keys of a handshake run in memory under `key`, initiator
/// first: for tests, benches and fuzz targets of the record layer.
pub fn handshake_in_memory(
    key: &ClusterKey,
    hello_frame: &[u8],
) -> Result<(StatelessTransportState, StatelessTransportState), snow::Error> {
    let mut peer = initiator(key, hello_frame);
    let mut master = responder(key, hello_frame);
    let (mut message, mut payload) = ([0u8; 256], [0u8; 256]);
    let n = peer.write_message(&[], &mut message)?;
    master.read_message(&message[..n], &mut payload)?;
    let n = master.write_message(&[], &mut message)?;
    peer.read_message(&message[..n], &mut payload)?;
    Ok((transport(peer)?, transport(master)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(a: &ClusterKey, b: &ClusterKey, hello: &[u8], hello_b: &[u8]) -> bool {
        let mut i = initiator(a, hello);
        let mut r = responder(b, hello_b);
        let mut m1 = [0u8; 128];
        let n = i.write_message(&[], &mut m1).unwrap();
        assert_eq!(n, FIRST_MESSAGE_LEN);
        let mut p = [0u8; 128];
        r.read_message(&m1[..n], &mut p).is_ok()
    }

    #[test]
    fn the_first_message_verifies_only_under_the_same_key_and_hello() {
        let key = ClusterKey::from_bytes([1; 32]);
        let other = ClusterKey::from_bytes([2; 32]);
        assert!(handshake(&key, &key, b"hello", b"hello"));
        assert!(!handshake(&key, &other, b"hello", b"hello"));
        assert!(!handshake(&key, &key, b"hello", b"hellp"));
    }

    #[test]
    fn a_seeded_thread_makes_the_same_first_message() {
        let key = ClusterKey::from_bytes([1; 32]);
        let first = |seed| {
            let _g = crate::determinism::Seeded::new(seed);
            let mut m = [0u8; 64];
            let n = initiator(&key, b"h").write_message(&[], &mut m).unwrap();
            m[..n].to_vec()
        };
        assert_eq!(first(3), first(3));
        assert_ne!(first(3), first(4));
    }
}

//! The proofs of the handshake's mutual challenge-response.
//!
//! Both sides pick a fresh random nonce; each proves it holds the cluster key
//! by an HMAC-SHA256 over both nonces, with a different label per direction,
//! so one side's proof can never be replayed as the other's:
//!
//! * master: `HMAC(key, "tessera master proof" | nonce_peer | nonce_master)`
//! * peer:   `HMAC(key, "tessera peer proof" | role | nonce_master | nonce_peer)`
//!
//! Proofs are checked in constant time (`hmac`'s `verify_slice`).

use hmac::Mac;

use crate::{Role, key::ClusterKey};

/// Length of a nonce and of a proof.
pub const PROOF_LEN: usize = 32;

/// A fresh random value one side contributes to the handshake.
pub type Nonce = [u8; PROOF_LEN];

/// An HMAC-SHA256 tag.
pub type Proof = [u8; PROOF_LEN];

/// A fresh nonce.
pub fn nonce() -> Nonce {
    rand::random()
}

fn role_byte(role: Role) -> u8 {
    match role {
        Role::Client => 1,
        Role::Worker => 2,
    }
}

fn master_mac(
    key: &ClusterKey,
    nonce_peer: &Nonce,
    nonce_master: &Nonce,
) -> crate::key::HmacSha256 {
    let mut mac = key.mac();
    mac.update(b"tessera master proof");
    mac.update(nonce_peer);
    mac.update(nonce_master);
    mac
}

fn peer_mac(
    key: &ClusterKey,
    role: Role,
    nonce_master: &Nonce,
    nonce_peer: &Nonce,
) -> crate::key::HmacSha256 {
    let mut mac = key.mac();
    mac.update(b"tessera peer proof");
    mac.update(&[role_byte(role)]);
    mac.update(nonce_master);
    mac.update(nonce_peer);
    mac
}

/// The master's proof for a peer that sent `nonce_peer`.
pub fn master_proof(key: &ClusterKey, nonce_peer: &Nonce, nonce_master: &Nonce) -> Proof {
    master_mac(key, nonce_peer, nonce_master)
        .finalize()
        .into_bytes()
        .into()
}

/// True when `proof` is the master's proof under `key` (constant time).
pub fn verify_master(
    key: &ClusterKey,
    nonce_peer: &Nonce,
    nonce_master: &Nonce,
    proof: &Proof,
) -> bool {
    master_mac(key, nonce_peer, nonce_master)
        .verify_slice(proof)
        .is_ok()
}

/// A peer's proof, answering the master's challenge.
pub fn peer_proof(key: &ClusterKey, role: Role, nonce_master: &Nonce, nonce_peer: &Nonce) -> Proof {
    peer_mac(key, role, nonce_master, nonce_peer)
        .finalize()
        .into_bytes()
        .into()
}

/// True when `proof` is a peer's proof under `key` (constant time).
pub fn verify_peer(
    key: &ClusterKey,
    role: Role,
    nonce_master: &Nonce,
    nonce_peer: &Nonce,
    proof: &Proof,
) -> bool {
    peer_mac(key, role, nonce_master, nonce_peer)
        .verify_slice(proof)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_only_under_the_same_key_nonces_and_role() {
        let key = ClusterKey::from_bytes([7; 32]);
        let other = ClusterKey::from_bytes([8; 32]);
        let (np, nm) = (nonce(), nonce());
        assert_ne!(np, nm);
        let pm = master_proof(&key, &np, &nm);
        assert!(verify_master(&key, &np, &nm, &pm));
        assert!(!verify_master(&other, &np, &nm, &pm));
        assert!(!verify_master(&key, &nm, &np, &pm));
        let pp = peer_proof(&key, Role::Worker, &nm, &np);
        assert!(verify_peer(&key, Role::Worker, &nm, &np, &pp));
        assert!(!verify_peer(&key, Role::Client, &nm, &np, &pp));
        assert!(!verify_peer(&other, Role::Worker, &nm, &np, &pp));
        // The master's proof is not a peer's proof (different labels), even
        // if a peer echoes the master's nonce as its own.
        assert!(!verify_peer(&key, Role::Worker, &np, &nm, &pm));
        assert!(!verify_master(&key, &nm, &np, &pp));
    }

    #[test]
    fn proofs_are_pinned() {
        // HMAC-SHA256 over fixed inputs: a change here breaks every cluster.
        let key = ClusterKey::from_bytes([0x11; 32]);
        let hex = |p: Proof| p.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let pm = master_proof(&key, &[1; 32], &[2; 32]);
        let pp = peer_proof(&key, Role::Client, &[2; 32], &[1; 32]);
        assert_eq!(hex(pm), PINNED_MASTER);
        assert_eq!(hex(pp), PINNED_PEER);
    }

    // Computed independently with Python's `hmac` module.
    const PINNED_MASTER: &str = "246c4e266519697bb697407d1f7d0c8f2a9c0bcd6f921bfd0634fd632f9a1336";
    const PINNED_PEER: &str = "8b84561f7cae5c1980d886ef167eab3be31cbb37c1770e87202549ee8b0ff92e";
}

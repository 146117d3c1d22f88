//! Hostile input on the wire, one test per class, against a real master on
//! 127.0.0.1:0 (in this process, with one worker). Each test pins the exact
//! outcome (the refusal or error and its message, whether the connection is
//! closed) and then checks that the master and its worker still serve a
//! well-behaved client. Hostile images: `hostile_images.rs`; limits that are
//! not about malformed input: `limits.rs`.

mod handshake_slots;
mod malformed;
mod raw;
mod transfers;
mod wrong_key;

use std::time::Duration;

const T: Duration = Duration::from_secs(10);

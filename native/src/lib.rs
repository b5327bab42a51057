//! # ringcrypto — ringtally-v2 linkable ring signatures with slot tags
//!
//! bLSAG (Back's linkable spontaneous anonymous group signature) over
//! ristretto255, with per-context key images for one-vote-per-submission
//! linkability; vote signatures add an issuer-free per-epoch slot tag
//! `T = x·G_slot` with a Chaum–Pedersen DLEQ proof (rate limiting without
//! linking votes). Compact and batchable wire formats, strict decoding,
//! constant-time signing with wiped secrets, multi-core batch verification.
//! The normative description is `native/SPEC.md`; code comments cite its §.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![warn(missing_docs)]

// ------------------------------------------------------------------------
// Public modules: the Rust API (also used by tests, examples and fuzzing).
// ------------------------------------------------------------------------

/// Randomized batch verification across cores.
pub mod batch;
/// Wire formats and strict decoding.
pub mod encoding;
/// Errors: two public classes, a detailed kind per rejection rule.
pub mod errors;
/// Hashing: expand_message_xmd, hash-to-group/scalar, challenge transcript.
pub mod hash;
/// Secret keys and key images.
pub mod keys;
/// Ring validation, canonical order, digest, cached points.
pub mod ring;
/// Constant-time signing.
pub mod sign;
/// Single-signature verification.
pub mod verify;

/// Hazardous: deterministic signing for test vectors only.
///
/// Production code must call [`sign::sign`], which draws the hedging
/// randomness from the OS. Reusing `randomness` is not catastrophic (nonces
/// are still bound to key, ring, context and message) but destroys the
/// hedge against fault and RNG attacks; never expose this to untrusted input.
pub mod hazmat {
    use crate::encoding::Format;
    use crate::errors::Result;
    use crate::keys::SecretKey;
    use crate::ring::Ring;

    /// SPEC §6 with the 32 bytes `z` of §6.2 supplied by the caller.
    pub fn sign_with_randomness(
        key: &SecretKey,
        ring: &Ring,
        ctx: &[u8],
        msg: &[u8],
        randomness: &[u8; 32],
        format: Format,
    ) -> Result<Vec<u8>> {
        crate::sign::sign_with_randomness(key, ring, ctx, msg, randomness, format)
    }

    /// SPEC §7 (vote signature) with the 32 bytes `z` supplied by the caller.
    #[allow(clippy::too_many_arguments)]
    pub fn sign_vote_with_randomness(
        key: &SecretKey,
        ring: &Ring,
        ctx: &[u8],
        epoch: &[u8],
        slot: u32,
        msg: &[u8],
        randomness: &[u8; 32],
        format: Format,
    ) -> Result<Vec<u8>> {
        crate::sign::sign_vote_with_randomness(key, ring, ctx, epoch, slot, msg, randomness, format)
    }
}

// ------------------------------------------------------------------------
// Internal: the Python binding (compiled only with the `python` feature).
// ------------------------------------------------------------------------

/// PyO3 bindings: the `ringcrypto` Python module.
#[cfg(feature = "python")]
mod python;

pub use encoding::{signature_length, vote_signature_length, Format};
pub use errors::{Error, ErrorClass, ErrorKind};
pub use hash::SPEC_VERSION;
pub use keys::SecretKey;
pub use ring::{Ring, MAX_RING_SIZE_DEFAULT, MAX_RING_SIZE_LIMIT};
pub use sign::{sign, sign_vote};
pub use verify::{verify, verify_vote, VoteTags};

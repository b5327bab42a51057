//! Rings (SPEC §5): validation, canonical order, digest, cached decoded points.

use curve25519_dalek::ristretto::RistrettoPoint;
use sha2::Digest;

use crate::errors::{Error, ErrorKind, Result};
use crate::hash::{tagged, tags};
use crate::keys::decode_point;

/// Default cap on ring size (SPEC §5).
pub const MAX_RING_SIZE_DEFAULT: usize = 1024;
/// Absolute cap: no ring may be configured larger than this (SPEC §5).
pub const MAX_RING_SIZE_LIMIT: usize = 65536;

/// A validated ring in canonical order, with decoded points cached so that
/// signing and verification never decompress members again.
#[derive(Clone, Debug)]
pub struct Ring {
    members: Vec<[u8; 32]>,
    points: Vec<RistrettoPoint>,
    digest: [u8; 64],
    max_size: usize,
}

impl Ring {
    /// Validate and canonicalise (SPEC §5, in the spec's order).
    pub fn new<'a, I>(public_keys: I, max_size: usize) -> Result<Self>
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: ExactSizeIterator,
    {
        if !(1..=MAX_RING_SIZE_LIMIT).contains(&max_size) {
            return Err(Error::new(
                ErrorKind::RingSize,
                format!("max_size {max_size} must be in 1..={MAX_RING_SIZE_LIMIT}"),
            ));
        }
        let iter = public_keys.into_iter();
        // Step 1: size first, so oversized input costs no curve work.
        let n = iter.len();
        if n == 0 || n > max_size {
            return Err(Error::new(
                ErrorKind::RingSize,
                format!("ring size {n} must be in 1..={max_size}"),
            ));
        }
        // Step 2: length, identity, DECODE for every member.
        let mut pairs: Vec<([u8; 32], RistrettoPoint)> = Vec::with_capacity(n);
        for (i, pk) in iter.enumerate() {
            let bytes: [u8; 32] = pk.try_into().map_err(|_| {
                Error::new(
                    ErrorKind::BadLength,
                    format!("ring member {i} must be 32 bytes, got {}", pk.len()),
                )
            })?;
            if bytes == [0u8; 32] {
                return Err(Error::new(
                    ErrorKind::IdentityMember,
                    format!("ring member {i} is the identity point"),
                ));
            }
            let p = decode_point(&bytes).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidPoint,
                    format!("ring member {i} is not a canonical ristretto255 encoding"),
                )
            })?;
            pairs.push((bytes, p));
        }
        // Step 3: canonical order = ascending encoding bytes.
        pairs.sort_unstable_by_key(|p| p.0);
        // Step 4: duplicates are adjacent after sorting.
        if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(Error::new(
                ErrorKind::DuplicateMember,
                "ring contains a duplicate public key",
            ));
        }
        let (members, points): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let digest = ring_digest(&members);
        Ok(Ring {
            members,
            points,
            digest,
            max_size,
        })
    }

    /// Number of members `n`.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a ring has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members in canonical order.
    pub fn members(&self) -> &[[u8; 32]] {
        &self.members
    }

    /// Decoded members, same order as [`Ring::members`].
    pub fn points(&self) -> &[RistrettoPoint] {
        &self.points
    }

    /// 64-byte ring digest D (SPEC §5).
    pub fn digest(&self) -> &[u8; 64] {
        &self.digest
    }

    /// The cap this ring was validated against.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Canonical index of a public key (variable time: public data only).
    pub fn index_of(&self, pk: &[u8]) -> Option<usize> {
        let pk: [u8; 32] = pk.try_into().ok()?;
        self.members.binary_search(&pk).ok()
    }

    /// Approximate heap + inline size in bytes (for capacity planning).
    pub fn memory_size(&self) -> usize {
        core::mem::size_of::<Self>()
            + self.members.capacity() * core::mem::size_of::<[u8; 32]>()
            + self.points.capacity() * core::mem::size_of::<RistrettoPoint>()
    }
}

/// `D = SHA512(lp("ringtally-v2:ring") ‖ u32be(n) ‖ P_0 ‖ … ‖ P_{n-1})` (SPEC §5).
pub fn ring_digest(members: &[[u8; 32]]) -> [u8; 64] {
    let n = u32::try_from(members.len()).unwrap_or(u32::MAX); // n ≤ 65536
    let mut h = tagged(tags::RING);
    h.update(n.to_be_bytes());
    for m in members {
        h.update(m);
    }
    h.finalize().into()
}

//! Secret keys (SPEC §3) and key images (SPEC §4).
//!
//! The secret scalar lives in a `Zeroizing` box and is wiped on drop; `Debug`
//! is redacted. The only way raw secret bytes leave this type is
//! [`SecretKey::export_secret`].

use core::fmt;

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::errors::{Error, ErrorKind, Result};
use crate::hash::{key_image_base, secret_hash_to_scalar, slot_base, tags, with_stack_wipe};

/// A ringtally signing key: secret scalar `x ≠ 0` and its public key `x·B`.
pub struct SecretKey {
    // Boxed: moving a SecretKey (returning it, storing it in a Python
    // object) copies only the pointer, never the scalar (SPEC §9).
    x: Box<Zeroizing<Scalar>>,
    public: [u8; 32],
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SecretKey(public_key={}, secret=<redacted>)",
            hex32(&self.public)
        )
    }
}

pub(crate) fn hex32(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl SecretKey {
    fn from_scalar(x: Zeroizing<Scalar>) -> Result<Self> {
        let x = Box::new(x);
        // SPEC §3: zero is rejected. Constant-time comparison; the outcome
        // (reject) is public anyway.
        if bool::from(x.ct_eq(&Scalar::ZERO)) {
            return Err(Error::new(
                ErrorKind::ZeroScalar,
                "secret scalar must not be zero",
            ));
        }
        let public = RistrettoPoint::mul_base(&x).compress().to_bytes();
        Ok(SecretKey { x, public })
    }

    /// A fresh key from the OS CSPRNG: 64 random bytes reduced wide (SPEC §3).
    pub fn generate() -> Result<Self> {
        with_stack_wipe(Self::generate_inner)
    }

    fn generate_inner() -> Result<Self> {
        loop {
            let mut wide = Zeroizing::new([0u8; 64]);
            fill_random(wide.as_mut())?;
            let x = Zeroizing::new(Scalar::from_bytes_mod_order_wide(&wide));
            if let Ok(k) = Self::from_scalar(x) {
                return Ok(k);
            }
        }
    }

    /// `x = H_s("ringtally-v2:keygen", seed)` for a 32-byte seed (SPEC §3).
    pub fn from_seed(seed: &[u8]) -> Result<Self> {
        if seed.len() != 32 {
            return Err(Error::new(
                ErrorKind::BadLength,
                format!("seed must be exactly 32 bytes, got {}", seed.len()),
            ));
        }
        with_stack_wipe(|| {
            Self::from_scalar(Zeroizing::new(secret_hash_to_scalar(tags::KEYGEN, &[seed])))
        })
    }

    /// Load a canonical, non-zero 32-byte little-endian scalar (SPEC §3).
    pub fn from_bytes(secret: &[u8]) -> Result<Self> {
        with_stack_wipe(|| Self::from_bytes_inner(secret))
    }

    fn from_bytes_inner(secret: &[u8]) -> Result<Self> {
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(secret.try_into().map_err(|_| {
            Error::new(
                ErrorKind::BadLength,
                format!("secret key must be exactly 32 bytes, got {}", secret.len()),
            )
        })?);
        let x = Option::<Scalar>::from(Scalar::from_canonical_bytes(*bytes)).ok_or_else(|| {
            Error::new(
                ErrorKind::NonCanonicalScalar,
                "secret key is not a canonical scalar (value >= group order)",
            )
        })?;
        Self::from_scalar(Zeroizing::new(x))
    }

    /// The canonical encoding of `x`. The only way secret bytes leave Rust.
    pub fn export_secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.x.to_bytes())
    }

    /// The 32-byte public key `ENCODE(x·B)`.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// `I = x·H_ctx` (SPEC §4), computed with constant-time scalar multiplication.
    pub fn key_image(&self, ctx: &[u8]) -> [u8; 32] {
        let h = key_image_base(ctx);
        with_stack_wipe(|| (h * **self.x).compress().to_bytes())
    }

    /// Slot tag `T = x·G_slot` for `(epoch, slot)` (SPEC §4.2), computed with
    /// constant-time scalar multiplication. Errors only for an epoch of
    /// 2^32 bytes or more.
    pub fn slot_tag(&self, epoch: &[u8], slot: u32) -> Result<[u8; 32]> {
        let g = slot_base(epoch, slot)?;
        Ok(with_stack_wipe(|| (g * **self.x).compress().to_bytes()))
    }

    pub(crate) fn scalar(&self) -> &Scalar {
        &self.x
    }
}

/// Fill `buf` from the OS CSPRNG; a failure is an error, never a panic.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    OsRng.try_fill_bytes(buf).map_err(|e| {
        Error::new(
            ErrorKind::RngFailure,
            format!("OS random number generator failed: {e}"),
        )
    })
}

/// Decode a 32-byte point encoding strictly (SPEC §1.1): canonical only.
pub(crate) fn decode_point(bytes: &[u8; 32]) -> Option<RistrettoPoint> {
    CompressedRistretto(*bytes).decompress()
}

//! Error type. Detailed internally (a `kind` per rejection rule of SPEC §5/§6.5/§7.4/§8)
//! but only two classes reach Python: `MalformedInput` and `InvalidSignature`.

use core::fmt;

/// Which public error class an error belongs to (SPEC §11): the two input
/// classes, plus `Internal` for failures that are not the caller's fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The input is not a valid encoding / violates a validation rule.
    MalformedInput,
    /// The input is well-formed but the signature equations do not hold.
    InvalidSignature,
    /// Not the caller's fault (the OS random number generator failed).
    Internal,
}

/// The precise rule that rejected an input. The string form (`as_str`) is
/// the `kind` used in SPEC.md, test-vectors.json and on Python exceptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Signature length does not match the ring size (SPEC §6.5/§7.4 step 1).
    Length,
    /// First byte is not a tag of the expected scheme (SPEC §6.5/§7.4 step 2).
    UnknownTag,
    /// Tag byte disagrees with the length (SPEC §6.5/§7.4 step 3).
    TagMismatch,
    /// A scalar is ≥ ℓ (SPEC §1.1, §6.5/§7.4 step 4).
    NonCanonicalScalar,
    /// The key image is the identity (SPEC §6.5/§7.4 step 5).
    IdentityKeyImage,
    /// The slot tag T of a vote signature is the identity (SPEC §7.4 step 6).
    IdentitySlotTag,
    /// A point encoding does not DECODE (SPEC §1.1).
    InvalidPoint,
    /// A ring member is the identity (SPEC §5).
    IdentityMember,
    /// Two ring members are equal (SPEC §5).
    DuplicateMember,
    /// Ring size outside 1..=max_size, or a bad max_size (SPEC §5).
    RingSize,
    /// A fixed-size field (key, seed, randomness) has the wrong length.
    BadLength,
    /// A secret scalar is zero (SPEC §3).
    ZeroScalar,
    /// The signing key is not a member of the ring.
    NotInRing,
    /// Some other argument is out of range (DST length, output length, …).
    BadArgument,
    /// The challenge chain does not close: c_n ≠ c_0 (SPEC §8.1–§8.3).
    RingNotClosed,
    /// A carried L_i/R_i differs from the recomputed one (SPEC §8.1).
    CarriedPointMismatch,
    /// The DLEQ proof of a vote signature does not verify (SPEC §8.2).
    DleqFailed,
    /// The combined batch equation failed for this signature (SPEC §8.3–§8.4).
    BatchEquation,
    /// The OS CSPRNG (getrandom) failed.
    RngFailure,
}

impl ErrorKind {
    /// Kebab-case name as used in SPEC.md and test vectors.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Length => "length",
            ErrorKind::UnknownTag => "unknown-tag",
            ErrorKind::TagMismatch => "tag-mismatch",
            ErrorKind::NonCanonicalScalar => "non-canonical-scalar",
            ErrorKind::IdentityKeyImage => "identity-key-image",
            ErrorKind::IdentitySlotTag => "identity-slot-tag",
            ErrorKind::InvalidPoint => "invalid-point",
            ErrorKind::IdentityMember => "identity-member",
            ErrorKind::DuplicateMember => "duplicate-member",
            ErrorKind::RingSize => "ring-size",
            ErrorKind::BadLength => "bad-length",
            ErrorKind::ZeroScalar => "zero-scalar",
            ErrorKind::NotInRing => "not-in-ring",
            ErrorKind::BadArgument => "bad-argument",
            ErrorKind::RingNotClosed => "ring-not-closed",
            ErrorKind::CarriedPointMismatch => "carried-point-mismatch",
            ErrorKind::DleqFailed => "dleq-failed",
            ErrorKind::BatchEquation => "batch-equation",
            ErrorKind::RngFailure => "rng-failure",
        }
    }

    /// The public class of this kind.
    pub fn class(self) -> ErrorClass {
        match self {
            ErrorKind::RingNotClosed
            | ErrorKind::CarriedPointMismatch
            | ErrorKind::DleqFailed
            | ErrorKind::BatchEquation => ErrorClass::InvalidSignature,
            ErrorKind::RngFailure => ErrorClass::Internal,
            _ => ErrorClass::MalformedInput,
        }
    }
}

/// An error with a human-readable detail that names the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    detail: String,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error {
            kind,
            detail: detail.into(),
        }
    }

    /// The rule that rejected the input.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// MalformedInput or InvalidSignature.
    pub fn class(&self) -> ErrorClass {
        self.kind.class()
    }

    /// The message (without the kind prefix).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for Error {}

/// Crate-wide result alias.
pub type Result<T> = core::result::Result<T, Error>;

//! PyO3 bindings. Every entry point runs inside `catch_unwind` so that no
//! Rust panic ever crosses into Python; crypto work runs with the GIL
//! released.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyList, PyTuple};

use crate::batch::{self, BatchItem, VoteItem};
use crate::encoding::{signature_length as sig_len, vote_signature_length as vote_sig_len, Format};
use crate::errors::{Error, ErrorClass, ErrorKind};
use crate::keys::{hex32, SecretKey};
use crate::ring::{Ring, MAX_RING_SIZE_DEFAULT, MAX_RING_SIZE_LIMIT};

create_exception!(
    ringcrypto,
    MalformedInput,
    PyValueError,
    "Input is not a valid encoding or violates a validation rule (see .kind)."
);
create_exception!(
    ringcrypto,
    InvalidSignature,
    PyValueError,
    "Signature is well-formed but does not verify (see .kind)."
);
create_exception!(
    ringcrypto,
    InternalError,
    PyRuntimeError,
    "A bug in ringcrypto (a Rust panic was caught at the boundary)."
);

/// Map a Rust error to MalformedInput / InvalidSignature with `.kind` set.
fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    let err = match e.class() {
        ErrorClass::MalformedInput => MalformedInput::new_err(e.detail().to_owned()),
        ErrorClass::InvalidSignature => InvalidSignature::new_err(e.detail().to_owned()),
        ErrorClass::Internal => InternalError::new_err(e.detail().to_owned()),
    };
    // Best effort: an attribute we cannot set must not mask the real error.
    let _ = err.value(py).setattr("kind", e.kind().as_str());
    err
}

/// Run `f`, converting a panic into `InternalError` (never a PanicException).
fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(InternalError::new_err(format!(
                "internal error in ringcrypto: {msg}"
            )))
        }
    }
}

/// A slot index: a Python int in 0..2^32. Out of range is MalformedInput
/// (kind `bad-argument`), a non-int TypeError.
fn slot_arg(py: Python<'_>, slot: &Bound<'_, PyAny>) -> PyResult<u32> {
    match slot_or_none(slot)? {
        Some(j) => Ok(j),
        None => Err(to_pyerr(
            py,
            Error::new(
                ErrorKind::BadArgument,
                format!("slot must be in 0..2^32, got {slot}"),
            ),
        )),
    }
}

/// `Ok(Some(j))` for an int in 0..2^32, `Ok(None)` for any other int,
/// TypeError for a non-int (bool is refused too).
fn slot_or_none(slot: &Bound<'_, PyAny>) -> PyResult<Option<u32>> {
    if !slot.is_instance_of::<PyInt>() || slot.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "slot must be an int, got {}",
            slot.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        )));
    }
    Ok(slot.extract::<u32>().ok())
}

fn bad_randomness(py: Python<'_>, randomness: &[u8]) -> PyErr {
    to_pyerr(
        py,
        Error::new(
            ErrorKind::BadLength,
            format!(
                "randomness must be exactly 32 bytes, got {}",
                randomness.len()
            ),
        ),
    )
}

fn format_of(batchable: bool) -> Format {
    if batchable {
        Format::Batchable
    } else {
        Format::Compact
    }
}

/// A ringtally signing key. The secret never leaves Rust except through
/// `export_secret()`; `repr` shows only the public key; not picklable.
#[pyclass(name = "SecretKey", module = "ringcrypto", frozen)]
struct PySecretKey {
    inner: SecretKey,
}

#[pymethods]
impl PySecretKey {
    /// A fresh key from the OS CSPRNG.
    #[staticmethod]
    fn generate(py: Python<'_>) -> PyResult<Self> {
        guard(|| {
            SecretKey::generate()
                .map(|inner| PySecretKey { inner })
                .map_err(|e| to_pyerr(py, e))
        })
    }

    /// Derive a key from exactly 32 seed bytes (SPEC §3).
    #[staticmethod]
    fn from_seed(py: Python<'_>, seed: &[u8]) -> PyResult<Self> {
        guard(|| {
            SecretKey::from_seed(seed)
                .map(|inner| PySecretKey { inner })
                .map_err(|e| to_pyerr(py, e))
        })
    }

    /// Load a canonical non-zero 32-byte scalar (e.g. from a key file).
    #[staticmethod]
    fn from_bytes(py: Python<'_>, secret: &[u8]) -> PyResult<Self> {
        guard(|| {
            SecretKey::from_bytes(secret)
                .map(|inner| PySecretKey { inner })
                .map_err(|e| to_pyerr(py, e))
        })
    }

    /// The raw 32-byte secret scalar. The only way secret bytes leave Rust:
    /// callers own their protection from here on.
    fn export_secret<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        guard(|| Ok(PyBytes::new(py, self.inner.export_secret().as_ref())))
    }

    /// The 32-byte public key.
    #[getter]
    fn public_key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        guard(|| Ok(PyBytes::new(py, &self.inner.public_key())))
    }

    /// Key image for `context`: the same for every ring (SPEC §4).
    fn key_image<'py>(&self, py: Python<'py>, context: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        let image = guard(|| Ok(py.detach(|| self.inner.key_image(context))))?;
        Ok(PyBytes::new(py, &image))
    }

    /// Slot tag T = x·G_slot for (epoch, slot) (SPEC §4.2): the same for
    /// every ring and context; one per key per (epoch, slot).
    fn slot_tag<'py>(
        &self,
        py: Python<'py>,
        epoch: &[u8],
        slot: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let j = slot_arg(py, slot)?;
        let tag = guard(|| {
            py.detach(|| self.inner.slot_tag(epoch, j))
                .map_err(|e| to_pyerr(py, e))
        })?;
        Ok(PyBytes::new(py, &tag))
    }

    fn __repr__(&self) -> PyResult<String> {
        guard(|| {
            Ok(format!(
                "SecretKey(public_key={}, secret=<redacted>)",
                hex32(&self.inner.public_key())
            ))
        })
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "SecretKey cannot be pickled or copied; use export_secret() explicitly",
        ))
    }

    fn __reduce_ex__(&self, _protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        self.__reduce__()
    }

    fn __getstate__(&self) -> PyResult<()> {
        self.__reduce__()
    }
}

// The literal default of `Ring(max_size=1024)` below must track the constant.
const _: () = assert!(MAX_RING_SIZE_DEFAULT == 1024);

/// A validated ring in canonical (sorted) order with cached decoded points.
#[pyclass(name = "Ring", module = "ringcrypto", frozen)]
struct PyRing {
    inner: Arc<Ring>,
}

#[pymethods]
impl PyRing {
    #[new]
    #[pyo3(signature = (public_keys, *, max_size = 1024))] // literal so it shows in __text_signature__

    fn new(py: Python<'_>, public_keys: &Bound<'_, PyAny>, max_size: usize) -> PyResult<Self> {
        guard(|| {
            if public_keys.is_instance_of::<PyBytes>()
                || public_keys.is_instance_of::<pyo3::types::PyString>()
            {
                return Err(PyTypeError::new_err(
                    "public_keys must be a sequence of 32-byte bytes objects",
                ));
            }
            let mut keys: Vec<Bound<'_, PyBytes>> = Vec::new();
            for (i, item) in public_keys.try_iter()?.enumerate() {
                let item = item?;
                let b = item.cast::<PyBytes>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "ring member {i} must be bytes, got {}",
                        item.get_type()
                            .name()
                            .map(|n| n.to_string())
                            .unwrap_or_default()
                    ))
                })?;
                keys.push(b.clone());
                if keys.len() > MAX_RING_SIZE_LIMIT.max(max_size) {
                    break; // the size check below rejects it; stop copying
                }
            }
            let slices: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            let ring = py
                .detach(|| Ring::new(slices.iter().copied(), max_size))
                .map_err(|e| to_pyerr(py, e))?;
            Ok(PyRing {
                inner: Arc::new(ring),
            })
        })
    }

    /// 64-byte ring digest (SPEC §5).
    #[getter]
    fn digest<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        guard(|| Ok(PyBytes::new(py, self.inner.digest())))
    }

    /// Members in canonical order.
    #[getter]
    fn public_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        guard(|| PyList::new(py, self.inner.members().iter().map(|m| PyBytes::new(py, m))))
    }

    /// The cap this ring was validated against.
    #[getter]
    fn max_size(&self) -> usize {
        self.inner.max_size()
    }

    /// Approximate memory held by the ring, in bytes.
    #[getter]
    fn memory_size(&self) -> PyResult<usize> {
        guard(|| Ok(self.inner.memory_size() + std::mem::size_of::<Self>()))
    }

    /// Canonical index of `public_key`; ValueError if absent.
    fn index(&self, public_key: &[u8]) -> PyResult<usize> {
        guard(|| {
            self.inner
                .index_of(public_key)
                .ok_or_else(|| PyValueError::new_err("public key is not a member of the ring"))
        })
    }

    fn __contains__(&self, public_key: &Bound<'_, PyAny>) -> PyResult<bool> {
        guard(|| {
            Ok(public_key
                .cast::<PyBytes>()
                .map(|b| self.inner.index_of(b.as_bytes()).is_some())
                .unwrap_or(false))
        })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        guard(|| {
            Ok(other
                .cast::<PyRing>()
                .map(|o| o.get().inner.digest() == self.inner.digest())
                .unwrap_or(false))
        })
    }

    fn __hash__(&self) -> PyResult<u64> {
        guard(|| {
            let d = self.inner.digest();
            let mut b = [0u8; 8];
            b.copy_from_slice(&d[..8]);
            Ok(u64::from_le_bytes(b) >> 1)
        })
    }

    fn __repr__(&self) -> PyResult<String> {
        guard(|| {
            let d = self.inner.digest();
            let mut h = [0u8; 32];
            h.copy_from_slice(&d[..32]);
            Ok(format!(
                "Ring(n={}, digest={}…)",
                self.inner.len(),
                &hex32(&h)[..16]
            ))
        })
    }
}

/// Sign `message` for `context` as an anonymous member of `ring`.
#[pyfunction]
#[pyo3(signature = (key, ring, context, message, *, batchable = false))]
fn sign<'py>(
    py: Python<'py>,
    key: &PySecretKey,
    ring: &PyRing,
    context: &[u8],
    message: &[u8],
    batchable: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let sig = guard(|| {
        py.detach(|| {
            crate::sign::sign(
                &key.inner,
                &ring.inner,
                context,
                message,
                format_of(batchable),
            )
        })
        .map_err(|e| to_pyerr(py, e))
    })?;
    Ok(PyBytes::new(py, &sig))
}

/// Verify one signature; returns the 32-byte key image.
#[pyfunction]
fn verify<'py>(
    py: Python<'py>,
    ring: &PyRing,
    context: &[u8],
    message: &[u8],
    signature: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let image = guard(|| {
        py.detach(|| crate::verify::verify(&ring.inner, context, message, signature))
            .map_err(|e| to_pyerr(py, e))
    })?;
    Ok(PyBytes::new(py, &image))
}

/// Verify many `(ring, context, message, signature)` items across cores.
/// Returns the key image or None per item (None for malformed ones too).
#[pyfunction]
#[pyo3(signature = (items, *, threads = None))]
fn verify_batch<'py>(
    py: Python<'py>,
    items: &Bound<'py, PyAny>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyList>> {
    guard(|| {
        type Owned<'py> = (
            Bound<'py, PyRing>,
            Bound<'py, PyBytes>,
            Bound<'py, PyBytes>,
            Bound<'py, PyBytes>,
        );
        let mut owned: Vec<Owned<'py>> = Vec::new();
        for (k, item) in items.try_iter()?.enumerate() {
            let item = item?;
            let bad = || {
                PyTypeError::new_err(format!(
                    "item {k} must be a tuple (Ring, bytes, bytes, bytes)"
                ))
            };
            let t = item.cast::<PyTuple>().map_err(|_| bad())?;
            if t.len() != 4 {
                return Err(bad());
            }
            let ring = t.get_item(0)?.cast_into::<PyRing>().map_err(|_| bad())?;
            let ctx = t.get_item(1)?.cast_into::<PyBytes>().map_err(|_| bad())?;
            let msg = t.get_item(2)?.cast_into::<PyBytes>().map_err(|_| bad())?;
            let sig = t.get_item(3)?.cast_into::<PyBytes>().map_err(|_| bad())?;
            owned.push((ring, ctx, msg, sig));
        }
        let batch_items: Vec<BatchItem<'_>> = owned
            .iter()
            .map(|(r, c, m, s)| BatchItem {
                ring: &r.get().inner,
                ctx: c.as_bytes(),
                msg: m.as_bytes(),
                sig: s.as_bytes(),
            })
            .collect();
        let results = py
            .detach(|| batch::verify_batch(&batch_items, threads))
            .map_err(|e| to_pyerr(py, e))?;
        let out = PyList::empty(py);
        for r in results {
            match r {
                Ok(image) => out.append(PyBytes::new(py, &image))?,
                Err(_) => out.append(py.None())?,
            }
        }
        Ok(out)
    })
}

/// Sign a vote: a ring signature on (context, message) plus the slot tag
/// T = x·G_slot for (epoch, slot) with a DLEQ proof (SPEC §7).
#[pyfunction]
#[pyo3(signature = (key, ring, context, epoch, slot, message, *, batchable = false))]
#[allow(clippy::too_many_arguments)]
fn sign_vote<'py>(
    py: Python<'py>,
    key: &PySecretKey,
    ring: &PyRing,
    context: &[u8],
    epoch: &[u8],
    slot: &Bound<'py, PyAny>,
    message: &[u8],
    batchable: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let j = slot_arg(py, slot)?;
    let sig = guard(|| {
        py.detach(|| {
            crate::sign::sign_vote(
                &key.inner,
                &ring.inner,
                context,
                epoch,
                j,
                message,
                format_of(batchable),
            )
        })
        .map_err(|e| to_pyerr(py, e))
    })?;
    Ok(PyBytes::new(py, &sig))
}

/// Verify one vote signature; returns (key_image, slot_tag), 32 bytes each.
#[pyfunction]
fn verify_vote<'py>(
    py: Python<'py>,
    ring: &PyRing,
    context: &[u8],
    epoch: &[u8],
    slot: &Bound<'py, PyAny>,
    message: &[u8],
    signature: &[u8],
) -> PyResult<Bound<'py, PyTuple>> {
    let j = slot_arg(py, slot)?;
    let tags = guard(|| {
        py.detach(|| crate::verify::verify_vote(&ring.inner, context, epoch, j, message, signature))
            .map_err(|e| to_pyerr(py, e))
    })?;
    PyTuple::new(
        py,
        [
            PyBytes::new(py, &tags.key_image),
            PyBytes::new(py, &tags.slot_tag),
        ],
    )
}

/// Verify many `(ring, context, epoch, slot, message, signature)` vote items
/// across cores. Returns (key_image, slot_tag) or None per item; with
/// `errors=True` a failed item is the exception a single `verify_vote` would
/// raise (`MalformedInput` or `InvalidSignature`, with its `kind`) instead of
/// None, so a caller needs no second verification to say why.
#[pyfunction]
#[pyo3(signature = (items, *, threads = None, errors = false))]
fn verify_vote_batch<'py>(
    py: Python<'py>,
    items: &Bound<'py, PyAny>,
    threads: Option<usize>,
    errors: bool,
) -> PyResult<Bound<'py, PyList>> {
    guard(|| {
        type Owned<'py> = (
            Bound<'py, PyRing>,
            Bound<'py, PyBytes>,
            Bound<'py, PyBytes>,
            Option<u32>,
            Bound<'py, PyBytes>,
            Bound<'py, PyBytes>,
        );
        let mut owned: Vec<Owned<'py>> = Vec::new();
        for (k, item) in items.try_iter()?.enumerate() {
            let item = item?;
            let bad = || {
                PyTypeError::new_err(format!(
                    "item {k} must be a tuple (Ring, bytes, bytes, int, bytes, bytes)"
                ))
            };
            let t = item.cast::<PyTuple>().map_err(|_| bad())?;
            if t.len() != 6 {
                return Err(bad());
            }
            let ring = t.get_item(0)?.cast_into::<PyRing>().map_err(|_| bad())?;
            let ctx = t.get_item(1)?.cast_into::<PyBytes>().map_err(|_| bad())?;
            let epoch = t.get_item(2)?.cast_into::<PyBytes>().map_err(|_| bad())?;
            let slot = slot_or_none(&t.get_item(3)?).map_err(|_| bad())?;
            let msg = t.get_item(4)?.cast_into::<PyBytes>().map_err(|_| bad())?;
            let sig = t.get_item(5)?.cast_into::<PyBytes>().map_err(|_| bad())?;
            owned.push((ring, ctx, epoch, slot, msg, sig));
        }
        // Items whose slot is out of range are rejected (None) without work.
        let batch_items: Vec<VoteItem<'_>> = owned
            .iter()
            .filter_map(|(r, c, e, j, m, s)| {
                j.map(|slot| VoteItem {
                    ring: &r.get().inner,
                    ctx: c.as_bytes(),
                    epoch: e.as_bytes(),
                    slot,
                    msg: m.as_bytes(),
                    sig: s.as_bytes(),
                })
            })
            .collect();
        let results = py
            .detach(|| batch::verify_vote_batch(&batch_items, threads))
            .map_err(|e| to_pyerr(py, e))?;
        let mut results = results.into_iter();
        let out = PyList::empty(py);
        for (_, _, _, j, _, _) in &owned {
            match j.map(|_| results.next()) {
                Some(Some(Ok(tags))) => out.append(PyTuple::new(
                    py,
                    [
                        PyBytes::new(py, &tags.key_image),
                        PyBytes::new(py, &tags.slot_tag),
                    ],
                )?)?,
                Some(Some(Err(e))) if errors => out.append(to_pyerr(py, e).into_value(py))?,
                None if errors => out.append(
                    to_pyerr(
                        py,
                        Error::new(ErrorKind::BadArgument, "slot must be in 0..2^32"),
                    )
                    .into_value(py),
                )?,
                _ => out.append(py.None())?,
            }
        }
        Ok(out)
    })
}

/// RFC 9380 hash_to_ristretto255(message, dst): 32-byte encoding.
#[pyfunction]
fn hash_to_group<'py>(
    py: Python<'py>,
    message: &[u8],
    dst: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let p = guard(|| crate::hash::hash_to_group(message, dst).map_err(|e| to_pyerr(py, e)))?;
    Ok(PyBytes::new(py, p.compress().as_bytes()))
}

/// RFC 9380 expand_message_xmd with SHA-512.
#[pyfunction]
fn expand_message_xmd<'py>(
    py: Python<'py>,
    message: &[u8],
    dst: &[u8],
    length: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let out = guard(|| {
        crate::hash::expand_message_xmd(message, dst, length).map_err(|e| to_pyerr(py, e))
    })?;
    Ok(PyBytes::new(py, &out))
}

/// Length in bytes of a signature for a ring of `n` members.
#[pyfunction]
#[pyo3(signature = (n, batchable = false))]
fn signature_length(n: usize, batchable: bool) -> PyResult<usize> {
    guard(|| {
        if !(1..=MAX_RING_SIZE_LIMIT).contains(&n) {
            return Err(PyValueError::new_err(format!(
                "ring size {n} must be in 1..={MAX_RING_SIZE_LIMIT}"
            )));
        }
        sig_len(n, format_of(batchable)).ok_or_else(|| PyValueError::new_err("ring size too large"))
    })
}

/// Length in bytes of a vote signature for a ring of `n` members.
#[pyfunction]
#[pyo3(signature = (n, batchable = false))]
fn vote_signature_length(n: usize, batchable: bool) -> PyResult<usize> {
    guard(|| {
        if !(1..=MAX_RING_SIZE_LIMIT).contains(&n) {
            return Err(PyValueError::new_err(format!(
                "ring size {n} must be in 1..={MAX_RING_SIZE_LIMIT}"
            )));
        }
        vote_sig_len(n, format_of(batchable))
            .ok_or_else(|| PyValueError::new_err("ring size too large"))
    })
}

/// HAZMAT, test vectors only: sign a vote with caller-supplied 32-byte randomness.
#[pyfunction]
#[pyo3(signature = (key, ring, context, epoch, slot, message, randomness, *, batchable = false))]
#[allow(clippy::too_many_arguments)]
fn sign_vote_with_randomness<'py>(
    py: Python<'py>,
    key: &PySecretKey,
    ring: &PyRing,
    context: &[u8],
    epoch: &[u8],
    slot: &Bound<'py, PyAny>,
    message: &[u8],
    randomness: &[u8],
    batchable: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let j = slot_arg(py, slot)?;
    let sig = guard(|| {
        let z: [u8; 32] = randomness
            .try_into()
            .map_err(|_| bad_randomness(py, randomness))?;
        crate::hazmat::sign_vote_with_randomness(
            &key.inner,
            &ring.inner,
            context,
            epoch,
            j,
            message,
            &z,
            format_of(batchable),
        )
        .map_err(|e| to_pyerr(py, e))
    })?;
    Ok(PyBytes::new(py, &sig))
}

/// HAZMAT, test vectors only: sign with caller-supplied 32-byte randomness.
#[pyfunction]
#[pyo3(signature = (key, ring, context, message, randomness, *, batchable = false))]
fn sign_with_randomness<'py>(
    py: Python<'py>,
    key: &PySecretKey,
    ring: &PyRing,
    context: &[u8],
    message: &[u8],
    randomness: &[u8],
    batchable: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let sig = guard(|| {
        let z: [u8; 32] = randomness
            .try_into()
            .map_err(|_| bad_randomness(py, randomness))?;
        crate::hazmat::sign_with_randomness(
            &key.inner,
            &ring.inner,
            context,
            message,
            &z,
            format_of(batchable),
        )
        .map_err(|e| to_pyerr(py, e))
    })?;
    Ok(PyBytes::new(py, &sig))
}

/// ringtally-v2 linkable ring signatures (bLSAG over ristretto255) and vote
/// signatures with per-epoch slot tags (DLEQ). See native/SPEC.md.
#[pymodule]
fn ringcrypto(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PySecretKey>()?;
    m.add_class::<PyRing>()?;
    m.add_function(wrap_pyfunction!(sign, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(verify_batch, m)?)?;
    m.add_function(wrap_pyfunction!(sign_vote, m)?)?;
    m.add_function(wrap_pyfunction!(verify_vote, m)?)?;
    m.add_function(wrap_pyfunction!(verify_vote_batch, m)?)?;
    m.add_function(wrap_pyfunction!(vote_signature_length, m)?)?;
    m.add_function(wrap_pyfunction!(hash_to_group, m)?)?;
    m.add_function(wrap_pyfunction!(expand_message_xmd, m)?)?;
    m.add_function(wrap_pyfunction!(signature_length, m)?)?;
    m.add("MalformedInput", py.get_type::<MalformedInput>())?;
    m.add("InvalidSignature", py.get_type::<InvalidSignature>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add("MAX_RING_SIZE_DEFAULT", MAX_RING_SIZE_DEFAULT)?;
    m.add("MAX_RING_SIZE_LIMIT", MAX_RING_SIZE_LIMIT)?;
    m.add("MAX_THREADS", batch::MAX_THREADS)?;
    m.add("SPEC_VERSION", crate::hash::SPEC_VERSION)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;

    let hazmat = PyModule::new(py, "hazmat")?;
    hazmat.setattr("__name__", "ringcrypto.hazmat")?;
    hazmat.setattr(
        "__doc__",
        "HAZARDOUS: deterministic signing for reproducing test vectors only. Never use in production.",
    )?;
    hazmat.add_function(wrap_pyfunction!(sign_with_randomness, &hazmat)?)?;
    hazmat.add_function(wrap_pyfunction!(sign_vote_with_randomness, &hazmat)?)?;
    m.add_submodule(&hazmat)?;
    // Make `import ringcrypto.hazmat` work as well as attribute access.
    py.import("sys")?
        .getattr("modules")?
        .set_item("ringcrypto.hazmat", &hazmat)?;
    Ok(())
}

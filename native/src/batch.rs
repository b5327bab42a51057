//! Batch verification (SPEC §8.2): hash chains from carried bytes, then one
//! randomized multiscalar multiplication per chunk with shared bases folded,
//! bisection to find culprits, rayon across cores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rayon::prelude::*;

use crate::encoding::{decode, decode_carried, Format};
use crate::errors::{Error, ErrorKind, Result};
use crate::hash::{key_image_base, Transcript};
use crate::keys::fill_random;
use crate::ring::Ring;
use crate::verify::verify;

/// One item to verify: (ring, context, message, signature).
#[derive(Clone, Copy)]
pub struct BatchItem<'a> {
    /// The ring the signature claims.
    pub ring: &'a Ring,
    /// Context (submission id).
    pub ctx: &'a [u8],
    /// Signed message.
    pub msg: &'a [u8],
    /// Signature bytes (either format).
    pub sig: &'a [u8],
}

/// A batchable signature that passed decoding and its hash chain (SPEC §8.2
/// steps 1–2), with everything the combined equation needs.
struct Prepared<'a> {
    index: usize,
    item: BatchItem<'a>,
    ring: &'a Ring,
    ctx: &'a [u8],
    key_image: RistrettoPoint,
    key_image_bytes: [u8; 32],
    c: Vec<Scalar>,
    s: Vec<Scalar>,
    l: Vec<RistrettoPoint>,
    r: Vec<RistrettoPoint>,
}

/// Steps 1–2 for one batchable signature: strict decode (incl. carried
/// points) and the hash chain over the carried bytes (no curve arithmetic).
fn prepare<'a>(index: usize, item: &BatchItem<'a>) -> Result<Prepared<'a>> {
    let n = item.ring.len();
    let d = decode(item.sig, n)?;
    let (l, r) = decode_carried(d.carried)?;
    let t = Transcript::new(item.ctx, item.ring.digest(), &d.key_image_bytes, item.msg)?;
    let mut c = Vec::with_capacity(n);
    let mut ci = d.c0;
    for pair in d.carried.chunks_exact(64) {
        c.push(ci);
        let mut lb = [0u8; 32];
        let mut rb = [0u8; 32];
        lb.copy_from_slice(&pair[..32]);
        rb.copy_from_slice(&pair[32..]);
        ci = t.challenge(&lb, &rb);
    }
    if ci != d.c0 {
        return Err(Error::new(
            ErrorKind::RingNotClosed,
            "ring signature does not verify: challenge chain does not close",
        ));
    }
    Ok(Prepared {
        index,
        item: *item,
        ring: item.ring,
        ctx: item.ctx,
        key_image: d.key_image,
        key_image_bytes: d.key_image_bytes,
        c,
        s: d.s,
        l,
        r,
    })
}

/// A uniformly random 128-bit weight from a buffer filled by the OS CSPRNG.
fn weight(bytes: &[u8]) -> Scalar {
    let mut w = [0u8; 32];
    w[..16].copy_from_slice(bytes);
    Scalar::from_bytes_mod_order(w) // < 2^128 < ℓ: no reduction happens
}

/// SPEC §8.2 step 3–4 on a set of prepared signatures: `Some(true)` iff the
/// combined equation holds; `None` if the OS RNG failed (no weights, no
/// verdict). Shared bases (B, each ring member, each H_ctx) are folded.
fn check_set(items: &[&Prepared<'_>]) -> Option<bool> {
    let equations: usize = items.iter().map(|p| p.s.len()).sum();
    let mut rnd = vec![0u8; 32 * equations];
    fill_random(&mut rnd).ok()?;
    let mut rnd = rnd.chunks_exact(16);

    // Terms for L and R carry the small positive weights; every folded base
    // gets the negated sum so the 128-bit weights stay short in the MSM.
    let mut scalars: Vec<Scalar> = Vec::with_capacity(2 * equations + items.len() + 8);
    let mut points: Vec<&RistrettoPoint> = Vec::with_capacity(2 * equations + items.len() + 8);
    let mut b_coeff = Scalar::ZERO;
    let mut ring_idx: HashMap<&[u8; 64], usize> = HashMap::new();
    let mut rings: Vec<(&Ring, Vec<Scalar>)> = Vec::new();
    let mut ctx_idx: HashMap<&[u8], usize> = HashMap::new();
    let mut ctxs: Vec<(&[u8], Scalar)> = Vec::new();
    let mut key_images: Vec<(&RistrettoPoint, Scalar)> = Vec::with_capacity(items.len());

    for p in items {
        let ri = *ring_idx.entry(p.ring.digest()).or_insert_with(|| {
            rings.push((p.ring, vec![Scalar::ZERO; p.ring.len()]));
            rings.len() - 1
        });
        let ci = *ctx_idx.entry(p.ctx).or_insert_with(|| {
            ctxs.push((p.ctx, Scalar::ZERO));
            ctxs.len() - 1
        });
        let mut h_coeff = Scalar::ZERO;
        let mut i_coeff = Scalar::ZERO;
        let member_coeffs = &mut rings[ri].1;
        for (j, (((s, c), l), r)) in p.s.iter().zip(&p.c).zip(&p.l).zip(&p.r).enumerate() {
            let (Some(wb), Some(vb)) = (rnd.next(), rnd.next()) else {
                return None; // unreachable: buffer sized for every equation
            };
            let w = weight(wb);
            let v = weight(vb);
            b_coeff += w * s;
            member_coeffs[j] += w * c;
            h_coeff += v * s;
            i_coeff += v * c;
            scalars.push(w);
            points.push(l);
            scalars.push(v);
            points.push(r);
        }
        ctxs[ci].1 += h_coeff;
        key_images.push((&p.key_image, i_coeff));
    }

    let h_points: Vec<RistrettoPoint> = ctxs.iter().map(|(ctx, _)| key_image_base(ctx)).collect();
    for (ki, coeff) in &key_images {
        scalars.push(-coeff);
        points.push(ki);
    }
    for ((_, coeff), h) in ctxs.iter().zip(&h_points) {
        scalars.push(-coeff);
        points.push(h);
    }
    for (ring, coeffs) in &rings {
        for (coeff, pt) in coeffs.iter().zip(ring.points()) {
            scalars.push(-coeff);
            points.push(pt);
        }
    }
    scalars.push(-b_coeff);
    points.push(&RISTRETTO_BASEPOINT_POINT);

    Some(RistrettoPoint::vartime_multiscalar_mul(scalars, points).is_identity())
}

/// Bisection (SPEC §8.2): re-check halves with fresh weights until every
/// failing signature is isolated. `out[k]` is set for `items[k]`.
fn find_valid(items: &[&Prepared<'_>], out: &mut [bool]) {
    if items.is_empty() {
        return;
    }
    match check_set(items) {
        Some(true) => {
            out.iter_mut().for_each(|o| *o = true);
            return;
        }
        Some(false) => {}
        None => {
            // No randomness for weights: fall back to the deterministic
            // single verifier (same verdicts, slower).
            for (p, o) in items.iter().zip(out.iter_mut()) {
                let it = p.item;
                *o = verify(it.ring, it.ctx, it.msg, it.sig).is_ok();
            }
            return;
        }
    }
    if items.len() == 1 {
        out[0] = false;
        return;
    }
    let mid = items.len() / 2;
    let (a, b) = items.split_at(mid);
    let (oa, ob) = out.split_at_mut(mid);
    rayon::join(|| find_valid(a, oa), || find_valid(b, ob));
}

/// Cached rayon pools, one per requested thread count.
fn pool_for(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = pools.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = guard.get(&threads) {
        return Ok(p.clone());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ringcrypto-{i}"))
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::BadArgument,
                format!("cannot start thread pool: {e}"),
            )
        })?;
    let pool = Arc::new(pool);
    guard.insert(threads, pool.clone());
    Ok(pool)
}

/// Largest accepted `threads` argument.
pub const MAX_THREADS: usize = 256;

/// Verify many signatures. Compact ones are verified singly in parallel;
/// batchable ones with one combined check per thread chunk, bisecting on
/// failure. `threads = None` uses rayon's global pool (one thread per core).
/// Each result is the key image or the reason for rejection (combined-check
/// failures report [`ErrorKind::BatchEquation`]).
pub fn verify_batch(
    items: &[BatchItem<'_>],
    threads: Option<usize>,
) -> Result<Vec<Result<[u8; 32]>>> {
    match threads {
        None => Ok(run_batch(items, rayon::current_num_threads())),
        Some(t) if (1..=MAX_THREADS).contains(&t) => {
            let pool = pool_for(t)?;
            Ok(pool.install(|| run_batch(items, t)))
        }
        Some(t) => Err(Error::new(
            ErrorKind::BadArgument,
            format!("threads must be in 1..={MAX_THREADS}, got {t}"),
        )),
    }
}

/// Smallest number of items per combined check: below ~64 signatures the
/// folded multiscalar multiplication loses efficiency (measured: 64 sigs of
/// ring 16 run at ~95% of the rate of 1,024).
const MIN_CHUNK: usize = 64;

/// Items are split into about four chunks per thread (at least MIN_CHUNK
/// each) so that work stealing keeps all threads busy even when the machine
/// is shared; each chunk gets its own combined check.
fn run_batch(items: &[BatchItem<'_>], threads: usize) -> Vec<Result<[u8; 32]>> {
    if items.is_empty() {
        return Vec::new();
    }
    let chunk = items
        .len()
        .div_ceil(threads.max(1) * 4)
        .max(MIN_CHUNK)
        .min(items.len());
    items
        .par_chunks(chunk)
        .map(run_chunk)
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect()
}

/// One chunk: compact signatures and the per-signature stage of batchable
/// ones in parallel (decode, hash chain), then one combined equation for the
/// chunk's batchable signatures, bisecting on failure.
fn run_chunk(items: &[BatchItem<'_>]) -> Vec<Result<[u8; 32]>> {
    enum Stage1<'a> {
        Done(Result<[u8; 32]>),
        Ready(Box<Prepared<'a>>),
    }
    let stage1: Vec<Stage1<'_>> = items
        .par_iter()
        .enumerate()
        .map(|(k, item)| {
            let tag_batchable = item.sig.first() == Some(&crate::encoding::TAG_BATCHABLE)
                && crate::encoding::signature_length(item.ring.len(), Format::Batchable)
                    == Some(item.sig.len());
            if tag_batchable {
                match prepare(k, item) {
                    Ok(p) => Stage1::Ready(Box::new(p)),
                    Err(e) => Stage1::Done(Err(e)),
                }
            } else {
                Stage1::Done(verify(item.ring, item.ctx, item.msg, item.sig))
            }
        })
        .collect();

    let mut results: Vec<Option<Result<[u8; 32]>>> = Vec::with_capacity(items.len());
    let mut prepared: Vec<Box<Prepared<'_>>> = Vec::new();
    for s in stage1 {
        match s {
            Stage1::Done(r) => results.push(Some(r)),
            Stage1::Ready(p) => {
                results.push(None);
                prepared.push(p);
            }
        }
    }

    if !prepared.is_empty() {
        let refs: Vec<&Prepared<'_>> = prepared.iter().map(|b| b.as_ref()).collect();
        let mut ok = vec![false; refs.len()];
        find_valid(&refs, &mut ok);
        for (p, good) in refs.iter().zip(ok) {
            if let Some(slot) = results.get_mut(p.index) {
                *slot = Some(if good {
                    Ok(p.key_image_bytes)
                } else {
                    Err(Error::new(
                        ErrorKind::BatchEquation,
                        "ring signature does not verify: ring equations fail",
                    ))
                });
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::new(ErrorKind::BatchEquation, "not verified"))))
        .collect()
}

/// Verify a set of batchable signatures with one combined check (no
/// threads, no culprit search): true iff all are valid (up to 2^-128).
/// Exposed for tests and benchmarks of the raw combined check.
pub fn verify_batchable_all(items: &[BatchItem<'_>]) -> bool {
    let mut prepared = Vec::with_capacity(items.len());
    for (k, it) in items.iter().enumerate() {
        match prepare(k, it) {
            Ok(p) => prepared.push(p),
            Err(_) => return false,
        }
    }
    let refs: Vec<&Prepared<'_>> = prepared.iter().collect();
    match check_set(&refs) {
        Some(all_ok) => all_ok,
        None => items
            .iter()
            .all(|it| verify(it.ring, it.ctx, it.msg, it.sig).is_ok()),
    }
}

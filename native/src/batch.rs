//! Batch verification (SPEC §8.3): hash chains from carried bytes, then one
//! randomized multiscalar multiplication per chunk with shared bases folded
//! (B, ring members, H_ctx per context, G_slot per (epoch, slot)); when a
//! chunk's combined check fails, every signature of the chunk gets its own
//! randomized check (SPEC §8.4); rayon across cores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rayon::prelude::*;

use crate::encoding::{
    decode, decode_carried, decode_vote, scheme_length, Decoded, DleqWire, Format, Scheme,
};
use crate::errors::{Error, ErrorKind, Result};
use crate::hash::{key_image_base, slot_base, Transcript};
use crate::keys::fill_random;
use crate::ring::Ring;
use crate::verify::{verify, verify_vote, VoteTags};

/// One plain ring signature to verify: (ring, context, message, signature).
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

/// One vote signature to verify: (ring, context, epoch, slot, message, signature).
#[derive(Clone, Copy)]
pub struct VoteItem<'a> {
    /// The ring the signature claims.
    pub ring: &'a Ring,
    /// Context (submission id).
    pub ctx: &'a [u8],
    /// Rate-limit epoch.
    pub epoch: &'a [u8],
    /// Slot index j within the epoch.
    pub slot: u32,
    /// Signed message.
    pub msg: &'a [u8],
    /// Vote signature bytes (either format).
    pub sig: &'a [u8],
}

/// Internal: either kind of item.
#[derive(Clone, Copy)]
struct Item<'a> {
    ring: &'a Ring,
    ctx: &'a [u8],
    msg: &'a [u8],
    sig: &'a [u8],
    vote: Option<(&'a [u8], u32)>,
}

impl<'a> From<&BatchItem<'a>> for Item<'a> {
    fn from(b: &BatchItem<'a>) -> Self {
        Item {
            ring: b.ring,
            ctx: b.ctx,
            msg: b.msg,
            sig: b.sig,
            vote: None,
        }
    }
}

impl<'a> From<&VoteItem<'a>> for Item<'a> {
    fn from(v: &VoteItem<'a>) -> Self {
        Item {
            ring: v.ring,
            ctx: v.ctx,
            msg: v.msg,
            sig: v.sig,
            vote: Some((v.epoch, v.slot)),
        }
    }
}

/// What an accepted item yields: I, and T for votes.
type Accepted = ([u8; 32], Option<[u8; 32]>);

impl Item<'_> {
    fn scheme(&self) -> Scheme {
        if self.vote.is_some() {
            Scheme::Vote
        } else {
            Scheme::Plain
        }
    }

    /// The deterministic single verifier of this item's scheme.
    fn verify_single(&self) -> Result<Accepted> {
        match self.vote {
            None => verify(self.ring, self.ctx, self.msg, self.sig).map(|i| (i, None)),
            Some((epoch, slot)) => {
                verify_vote(self.ring, self.ctx, epoch, slot, self.msg, self.sig)
                    .map(|v| (v.key_image, Some(v.slot_tag)))
            }
        }
    }

    /// True iff the bytes have the batchable tag and length of the item's scheme.
    fn is_batchable(&self) -> bool {
        let scheme = self.scheme();
        self.sig.first() == Some(&scheme.tag(Format::Batchable))
            && scheme_length(scheme, self.ring.len(), Format::Batchable) == Some(self.sig.len())
    }
}

/// The DLEQ part of a prepared vote (SPEC §8.3).
struct VotePrepared<'a> {
    epoch: &'a [u8],
    slot: u32,
    tag: RistrettoPoint,
    tag_bytes: [u8; 32],
    e: Scalar,
    t: Scalar,
    a: RistrettoPoint,
    a2: RistrettoPoint,
}

/// A batchable signature that passed decoding and its hash chain (SPEC §8.3
/// steps 1–2), with everything the combined equation needs.
struct Prepared<'a> {
    index: usize,
    item: Item<'a>,
    key_image: RistrettoPoint,
    key_image_bytes: [u8; 32],
    c: Vec<Scalar>,
    s: Vec<Scalar>,
    l: Vec<RistrettoPoint>,
    r: Vec<RistrettoPoint>,
    vote: Option<VotePrepared<'a>>,
}

impl Prepared<'_> {
    fn accepted(&self) -> Accepted {
        (
            self.key_image_bytes,
            self.vote.as_ref().map(|v| v.tag_bytes),
        )
    }

    /// Number of randomized equations: 2 per ring member, 2 for the DLEQ.
    fn equations(&self) -> usize {
        2 * self.s.len() + if self.vote.is_some() { 2 } else { 0 }
    }
}

/// Steps 1–2 for one batchable signature: strict decode (incl. carried
/// points) and the hash chain over the carried bytes (no curve arithmetic).
fn prepare<'a>(index: usize, item: &Item<'a>) -> Result<Prepared<'a>> {
    let n = item.ring.len();
    let (d, transcript, vote): (Decoded<'a>, Transcript, Option<VotePrepared<'a>>) = match item.vote
    {
        None => {
            let d = decode(item.sig, n)?;
            let t = Transcript::new(item.ctx, item.ring.digest(), &d.key_image_bytes, item.msg)?;
            (d, t, None)
        }
        Some((epoch, slot)) => {
            let v = decode_vote(item.sig, n)?;
            let DleqWire::Batchable {
                a_bytes,
                a2_bytes,
                a,
                a2,
                t,
            } = v.dleq
            else {
                return Err(Error::new(ErrorKind::TagMismatch, "not a batchable vote"));
            };
            let tr = Transcript::new_vote(
                item.ctx,
                item.ring.digest(),
                &v.ring.key_image_bytes,
                epoch,
                slot,
                &v.tag_bytes,
                item.msg,
            )?;
            let e = tr.dleq_challenge(&a_bytes, &a2_bytes);
            let vp = VotePrepared {
                epoch,
                slot,
                tag: v.tag,
                tag_bytes: v.tag_bytes,
                e,
                t,
                a,
                a2,
            };
            (v.ring, tr, Some(vp))
        }
    };
    let (l, r) = decode_carried(d.carried)?;
    let mut c = Vec::with_capacity(n);
    let mut ci = d.c0;
    for pair in d.carried.chunks_exact(64) {
        c.push(ci);
        let mut lb = [0u8; 32];
        let mut rb = [0u8; 32];
        lb.copy_from_slice(&pair[..32]);
        rb.copy_from_slice(&pair[32..]);
        ci = transcript.challenge(&lb, &rb);
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
        key_image: d.key_image,
        key_image_bytes: d.key_image_bytes,
        c,
        s: d.s,
        l,
        r,
        vote,
    })
}

/// A uniformly random 128-bit weight from a buffer filled by the OS CSPRNG.
fn weight(bytes: &[u8]) -> Scalar {
    let mut w = [0u8; 32];
    w[..16].copy_from_slice(bytes);
    Scalar::from_bytes_mod_order(w) // < 2^128 < ℓ: no reduction happens
}

/// SPEC §8.3 steps 3–4 on a set of prepared signatures: `Some(true)` iff the
/// combined equation holds; `None` if the OS RNG failed (no weights, no
/// verdict). Shared bases (B, each ring member, each H_ctx, each G_slot)
/// are folded.
fn check_set(items: &[&Prepared<'_>]) -> Option<bool> {
    let equations: usize = items.iter().map(|p| p.equations()).sum();
    let mut rnd = vec![0u8; 16 * equations];
    fill_random(&mut rnd).ok()?;
    let mut rnd = rnd.chunks_exact(16);

    // Terms for L, R, A, A' carry the small positive weights; every folded
    // base gets the negated sum so the 128-bit weights stay short in the MSM.
    let mut scalars: Vec<Scalar> = Vec::with_capacity(equations + 3 * items.len() + 8);
    let mut points: Vec<&RistrettoPoint> = Vec::with_capacity(equations + 3 * items.len() + 8);
    let mut b_coeff = Scalar::ZERO;
    let mut ring_idx: HashMap<&[u8; 64], usize> = HashMap::new();
    let mut rings: Vec<(&Ring, Vec<Scalar>)> = Vec::new();
    let mut ctx_idx: HashMap<&[u8], usize> = HashMap::new();
    let mut ctxs: Vec<(&[u8], Scalar)> = Vec::new();
    let mut slot_idx: HashMap<(&[u8], u32), usize> = HashMap::new();
    let mut slots: Vec<((&[u8], u32), Scalar)> = Vec::new();
    let mut per_sig: Vec<(&RistrettoPoint, Scalar)> = Vec::with_capacity(2 * items.len());

    for p in items {
        let ring = p.item.ring;
        let ri = *ring_idx.entry(ring.digest()).or_insert_with(|| {
            rings.push((ring, vec![Scalar::ZERO; ring.len()]));
            rings.len() - 1
        });
        let ci = *ctx_idx.entry(p.item.ctx).or_insert_with(|| {
            ctxs.push((p.item.ctx, Scalar::ZERO));
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
            // w·(s·B + c·P_j − L) + v·(s·H + c·I − R)
            b_coeff += w * s;
            member_coeffs[j] += w * c;
            h_coeff += v * s;
            i_coeff += v * c;
            scalars.push(w);
            points.push(l);
            scalars.push(v);
            points.push(r);
        }
        if let Some(vp) = &p.vote {
            let (Some(ub), Some(u2b)) = (rnd.next(), rnd.next()) else {
                return None; // unreachable
            };
            let u = weight(ub);
            let u2 = weight(u2b);
            // u·(t·H + e·I − A) + u'·(t·G_slot + e·T − A')
            h_coeff += u * vp.t;
            i_coeff += u * vp.e;
            let si = *slot_idx.entry((vp.epoch, vp.slot)).or_insert_with(|| {
                slots.push(((vp.epoch, vp.slot), Scalar::ZERO));
                slots.len() - 1
            });
            slots[si].1 += u2 * vp.t;
            per_sig.push((&vp.tag, u2 * vp.e));
            scalars.push(u);
            points.push(&vp.a);
            scalars.push(u2);
            points.push(&vp.a2);
        }
        ctxs[ci].1 += h_coeff;
        per_sig.push((&p.key_image, i_coeff));
    }

    let h_points: Vec<RistrettoPoint> = ctxs.iter().map(|(ctx, _)| key_image_base(ctx)).collect();
    let mut g_points: Vec<RistrettoPoint> = Vec::with_capacity(slots.len());
    for ((epoch, slot), _) in &slots {
        // Only fails for an epoch ≥ 2^32 bytes, which decoding already refused.
        g_points.push(slot_base(epoch, *slot).ok()?);
    }
    for (pt, coeff) in &per_sig {
        scalars.push(-coeff);
        points.push(pt);
    }
    for ((_, coeff), h) in ctxs.iter().zip(&h_points) {
        scalars.push(-coeff);
        points.push(h);
    }
    for ((_, coeff), g) in slots.iter().zip(&g_points) {
        scalars.push(-coeff);
        points.push(g);
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

/// SPEC §8.4: one combined check for the set; if it fails, every signature
/// gets a combined check of its own (fresh weights), in parallel. No
/// bisection: a set of hostile signatures then costs one combined check plus
/// one single-signature check each, instead of O(log m) rounds each.
/// `out[k]` is set for `items[k]`.
fn find_valid(items: &[&Prepared<'_>], out: &mut [bool]) {
    if items.is_empty() {
        return;
    }
    match check_set(items) {
        Some(true) => out.iter_mut().for_each(|o| *o = true),
        Some(false) if items.len() == 1 => out[0] = false,
        Some(false) => {
            items.par_iter().zip(out.par_iter_mut()).for_each(|(p, o)| {
                *o = match check_set(core::slice::from_ref(p)) {
                    Some(v) => v,
                    None => p.item.verify_single().is_ok(),
                }
            });
        }
        None => {
            // No randomness for weights: fall back to the deterministic
            // single verifier (same verdicts, slower).
            items
                .par_iter()
                .zip(out.par_iter_mut())
                .for_each(|(p, o)| *o = p.item.verify_single().is_ok());
        }
    }
}

/// Largest accepted `threads` argument.
pub const MAX_THREADS: usize = 256;

/// At most this many dedicated pools are cached (most recently used kept).
const MAX_CACHED_POOLS: usize = 4;

type PoolCache = Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>>;

fn pool_cache() -> &'static PoolCache {
    static POOLS: OnceLock<PoolCache> = OnceLock::new();
    POOLS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Dedicated rayon pools for explicit thread counts: a small LRU cache of
/// at most [`MAX_CACHED_POOLS`] pools holding at most [`MAX_THREADS`]
/// threads in total (the pool just requested is always kept). An evicted
/// pool's threads exit once the calls still using it return, so the
/// process holds at most `MAX_THREADS` cached threads plus those of pools
/// in use at that moment, whatever sequence of thread counts callers use.
fn pool_for(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    let mut guard = pool_cache().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pos) = guard.iter().position(|(t, _)| *t == threads) {
        let entry = guard.remove(pos);
        let pool = entry.1.clone();
        guard.insert(0, entry);
        return Ok(pool);
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
    guard.insert(0, (threads, pool.clone()));
    let mut total: usize = 0;
    let mut keep = 0;
    for (t, _) in guard.iter() {
        if keep > 0 && (keep >= MAX_CACHED_POOLS || total + t > MAX_THREADS) {
            break;
        }
        total += t;
        keep += 1;
    }
    guard.truncate(keep);
    Ok(pool)
}

/// Thread counts of the cached dedicated pools, most recently used first
/// (for tests of the cache bound).
pub fn cached_pools() -> Vec<usize> {
    let guard = pool_cache().lock().unwrap_or_else(|e| e.into_inner());
    guard.iter().map(|(t, _)| *t).collect()
}

fn run_in_pool<T: Send>(threads: Option<usize>, f: impl FnOnce(usize) -> T + Send) -> Result<T> {
    match threads {
        None => Ok(f(rayon::current_num_threads())),
        Some(t) if (1..=MAX_THREADS).contains(&t) => {
            let pool = pool_for(t)?;
            Ok(pool.install(|| f(t)))
        }
        Some(t) => Err(Error::new(
            ErrorKind::BadArgument,
            format!("threads must be in 1..={MAX_THREADS}, got {t}"),
        )),
    }
}

/// Verify many plain ring signatures. Compact ones are verified singly in
/// parallel; batchable ones with one combined check per thread chunk, each
/// failing chunk falling back to per-signature checks (SPEC §8.4).
/// `threads = None` uses rayon's global pool (one thread per core).
/// Each result is the key image or the reason for rejection (combined-check
/// failures report [`ErrorKind::BatchEquation`]).
pub fn verify_batch(
    items: &[BatchItem<'_>],
    threads: Option<usize>,
) -> Result<Vec<Result<[u8; 32]>>> {
    let items: Vec<Item<'_>> = items.iter().map(Item::from).collect();
    run_in_pool(threads, |t| run_batch(&items, t))
        .map(|v| v.into_iter().map(|r| r.map(|(i, _)| i)).collect())
}

/// Verify many vote signatures (SPEC §8.3 with the DLEQ equations): same
/// scheduling as [`verify_batch`]. Each result is `(I, T)` or the reason
/// for rejection. Accepts exactly what [`verify_vote`] accepts, up to 2^-128.
pub fn verify_vote_batch(
    items: &[VoteItem<'_>],
    threads: Option<usize>,
) -> Result<Vec<Result<VoteTags>>> {
    let items: Vec<Item<'_>> = items.iter().map(Item::from).collect();
    run_in_pool(threads, |t| run_batch(&items, t)).map(|v| {
        v.into_iter()
            .map(|r| {
                r.and_then(|(key_image, tag)| match tag {
                    Some(slot_tag) => Ok(VoteTags {
                        key_image,
                        slot_tag,
                    }),
                    None => Err(Error::new(ErrorKind::BatchEquation, "not verified")),
                })
            })
            .collect()
    })
}

/// Smallest number of items per combined check: below ~64 signatures the
/// folded multiscalar multiplication loses efficiency (measured: 64 sigs of
/// ring 16 run at ~95% of the rate of 1,024).
const MIN_CHUNK: usize = 64;

/// Items are split into about four chunks per thread (at least MIN_CHUNK
/// each) so that work stealing keeps all threads busy even when the machine
/// is shared; each chunk gets its own combined check.
fn run_batch(items: &[Item<'_>], threads: usize) -> Vec<Result<Accepted>> {
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
/// chunk's batchable signatures, per-signature checks if it fails.
fn run_chunk(items: &[Item<'_>]) -> Vec<Result<Accepted>> {
    enum Stage1<'a> {
        Done(Result<Accepted>),
        Ready(Box<Prepared<'a>>),
    }
    let stage1: Vec<Stage1<'_>> = items
        .par_iter()
        .enumerate()
        .map(|(k, item)| {
            if item.is_batchable() {
                match prepare(k, item) {
                    Ok(p) => Stage1::Ready(Box::new(p)),
                    Err(e) => Stage1::Done(Err(e)),
                }
            } else {
                Stage1::Done(item.verify_single())
            }
        })
        .collect();

    let mut results: Vec<Option<Result<Accepted>>> = Vec::with_capacity(items.len());
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
                    Ok(p.accepted())
                } else {
                    Err(Error::new(
                        ErrorKind::BatchEquation,
                        "signature does not verify: its equations fail",
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

/// Verify a set of batchable plain signatures with one combined check (no
/// threads, no culprit search): true iff all are valid (up to 2^-128).
/// Exposed for tests and benchmarks of the raw combined check.
pub fn verify_batchable_all(items: &[BatchItem<'_>]) -> bool {
    let items: Vec<Item<'_>> = items.iter().map(Item::from).collect();
    all_in_one_check(&items)
}

/// [`verify_batchable_all`] for batchable vote signatures.
pub fn verify_vote_batchable_all(items: &[VoteItem<'_>]) -> bool {
    let items: Vec<Item<'_>> = items.iter().map(Item::from).collect();
    all_in_one_check(&items)
}

fn all_in_one_check(items: &[Item<'_>]) -> bool {
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
        None => items.iter().all(|it| it.verify_single().is_ok()),
    }
}

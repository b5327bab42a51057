//! Constant-time signing: plain bLSAG (SPEC §6) and vote signatures
//! (bLSAG + slot tag + DLEQ, SPEC §7); constant time and secret hygiene §9.
//!
//! Nothing below branches on, or indexes memory by, the secret key, the
//! nonces or the signer index π. The ring is rotated by the secret amount
//! ρ = (π+1) mod n with a constant-time barrel shifter so that the signer is
//! always the last step of a loop that runs in a fixed order.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::MultiscalarMul;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, Zeroizing};

use crate::encoding::{encode, DleqOut, Format};
use crate::errors::{Error, ErrorKind, Result};
use crate::hash::{
    key_image_base, secret_hash_to_scalar, slot_base, tags, with_stack_wipe, SecretSha512,
    Transcript,
};
use crate::keys::{fill_random, SecretKey};
use crate::ring::Ring;

/// Sign a plain ring signature with fresh randomness from the OS CSPRNG
/// (SPEC §6).
pub fn sign(
    key: &SecretKey,
    ring: &Ring,
    ctx: &[u8],
    msg: &[u8],
    format: Format,
) -> Result<Vec<u8>> {
    let mut z = Zeroizing::new([0u8; 32]);
    fill_random(z.as_mut())?;
    sign_with_randomness(key, ring, ctx, msg, &z, format)
}

/// Sign a vote (bLSAG + slot tag `T = x·G_slot` + DLEQ, SPEC §7) with fresh
/// randomness from the OS CSPRNG.
#[allow(clippy::too_many_arguments)]
pub fn sign_vote(
    key: &SecretKey,
    ring: &Ring,
    ctx: &[u8],
    epoch: &[u8],
    slot: u32,
    msg: &[u8],
    format: Format,
) -> Result<Vec<u8>> {
    let mut z = Zeroizing::new([0u8; 32]);
    fill_random(z.as_mut())?;
    sign_vote_with_randomness(key, ring, ctx, epoch, slot, msg, &z, format)
}

/// Rotate `v` left by `amount` (< v.len()) in constant time: one stage per
/// bit of `amount`, each stage a public-pattern rotation by 2^b mod n that is
/// conditionally selected by that bit (SPEC §9).
fn ct_rotate_left<T: ConditionallySelectable + Zeroize>(v: &mut [T], amount: u64) {
    let n = v.len();
    let mut bit = 0u32;
    while bit < usize::BITS && (1usize << bit) < n {
        let shift = (1usize << bit) % n; // public: depends only on n
        let take = Choice::from(((amount >> bit) & 1) as u8);
        // tmp[j] = v[(j + shift) mod n] — a fixed, public access pattern.
        let mut tmp: Vec<T> = (0..n)
            .map(|j| {
                let k = if j + shift >= n {
                    j + shift - n
                } else {
                    j + shift
                }; // public j
                v[k]
            })
            .collect();
        for (dst, src) in v.iter_mut().zip(tmp.iter()) {
            dst.conditional_assign(src, take);
        }
        tmp.iter_mut().for_each(Zeroize::zeroize); // may hold secret nonces
        bit += 1;
    }
}

/// Deterministic core of plain signing; `z` is the 32-byte hedging
/// randomness. Reached from outside the crate only through [`crate::hazmat`].
pub(crate) fn sign_with_randomness(
    key: &SecretKey,
    ring: &Ring,
    ctx: &[u8],
    msg: &[u8],
    z: &[u8; 32],
    format: Format,
) -> Result<Vec<u8>> {
    with_stack_wipe(|| sign_core(key, ring, ctx, None, msg, z, format))
}

/// Deterministic core of vote signing (SPEC §7); see [`sign_with_randomness`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn sign_vote_with_randomness(
    key: &SecretKey,
    ring: &Ring,
    ctx: &[u8],
    epoch: &[u8],
    slot: u32,
    msg: &[u8],
    z: &[u8; 32],
    format: Format,
) -> Result<Vec<u8>> {
    with_stack_wipe(|| sign_core(key, ring, ctx, Some((epoch, slot)), msg, z, format))
}

/// SPEC §6 (and §7 when `vote` is `Some((epoch, slot))`). Runs inside
/// [`with_stack_wipe`]; every secret-holding buffer it owns is zeroizing.
fn sign_core(
    key: &SecretKey,
    ring: &Ring,
    ctx: &[u8],
    vote: Option<(&[u8], u32)>,
    msg: &[u8],
    z: &[u8; 32],
    format: Format,
) -> Result<Vec<u8>> {
    let n = ring.len();
    let n64 = n as u64;
    let x = key.scalar();
    let pk = key.public_key();

    // Find π with constant-time equality and select; only "absent" is public.
    let mut pi = 0u64;
    let mut found = Choice::from(0);
    for (i, member) in ring.members().iter().enumerate() {
        let eq = member.ct_eq(&pk);
        pi.conditional_assign(&(i as u64), eq);
        found |= eq;
    }
    if !bool::from(found) {
        return Err(Error::new(
            ErrorKind::NotInRing,
            "signing key's public key is not a member of the ring",
        ));
    }

    // SPEC §4: H = H_ctx, I = x·H (constant-time variable-base multiplication).
    let h = key_image_base(ctx);
    let key_image = h * x;
    let key_image_bytes = key_image.compress().to_bytes();
    // SPEC §4.2 / §7.1: G = G_slot, T = x·G, and the transcript TR.
    let (transcript, slot) = match vote {
        None => (
            Transcript::new(ctx, ring.digest(), &key_image_bytes, msg)?,
            None,
        ),
        Some((epoch, j)) => {
            let g = slot_base(epoch, j)?;
            let tag_bytes = (g * x).compress().to_bytes();
            let t = Transcript::new_vote(
                ctx,
                ring.digest(),
                &key_image_bytes,
                epoch,
                j,
                &tag_bytes,
                msg,
            )?;
            (t, Some((g, tag_bytes)))
        }
    };

    // SPEC §6.2: seed = SHA512(lp(tag) ‖ x ‖ z ‖ TR); k_j = H_s(tag, seed ‖ u32be(j)).
    // Both hashes run on the zeroizing SHA-512 (SPEC §9).
    let mut seed = Zeroizing::new([0u8; 64]);
    {
        let mut hs = SecretSha512::tagged(tags::NONCE_SEED);
        hs.update(x.as_bytes());
        hs.update(z);
        hs.update(transcript.prehash());
        hs.finalize_into(&mut seed);
    }
    let nonce = |j: u64| -> Scalar {
        let j32 = u32::try_from(j).unwrap_or(u32::MAX).to_be_bytes(); // j ≤ n+1 ≤ 65537
        secret_hash_to_scalar(tags::NONCE, &[seed.as_ref(), &j32])
    };
    let alpha = Zeroizing::new(nonce(0));
    // r_i = k_{i+1} for every canonical i (r_π is computed and discarded).
    let mut r: Zeroizing<Vec<Scalar>> = Zeroizing::new((0..n64).map(|i| nonce(i + 1)).collect());

    // ρ = (π+1) mod n and u = (n−ρ) mod n, without data-dependent % or branches.
    let mut rho = pi + 1;
    rho.conditional_assign(&0, rho.ct_eq(&n64));
    let mut unrot = n64 - rho;
    unrot.conditional_assign(&0, unrot.ct_eq(&n64));

    // Rotate members and decoy responses so the signer is at position n−1:
    // rotated[j] = canonical[(j + ρ) mod n].
    let mut p: Vec<RistrettoPoint> = ring.points().to_vec();
    ct_rotate_left(&mut p, rho);
    ct_rotate_left(&mut r, rho);

    let mut c = vec![Scalar::ZERO; n];
    let mut lr = vec![([0u8; 32], [0u8; 32]); n];

    // SPEC §6.3 step 1 (always first): L_π = αB, R_π = αH, c_{π+1} = chal(L_π, R_π).
    let l_sig = RistrettoPoint::mul_base(&alpha).compress().to_bytes();
    let r_sig = (h * *alpha).compress().to_bytes();
    let mut c_next = transcript.challenge(&l_sig, &r_sig);
    if let Some(last) = lr.last_mut() {
        *last = (l_sig, r_sig);
    }

    // Step 2: n−1 identical decoy steps in fixed order (rotated positions 0..n−2),
    // all with constant-time scalar multiplication.
    for j in 0..n.saturating_sub(1) {
        c[j] = c_next;
        let l = RistrettoPoint::mul_base(&r[j]) + p[j] * c[j];
        let rr = RistrettoPoint::multiscalar_mul([r[j], c[j]], [h, key_image]);
        let pair = (l.compress().to_bytes(), rr.compress().to_bytes());
        c_next = transcript.challenge(&pair.0, &pair.1);
        lr[j] = pair;
    }
    // c_π sits at rotated position n−1.
    if let Some(last) = c.last_mut() {
        *last = c_next;
    }

    // Step 3: s_π = α − c_π·x at position n−1; decoys keep s_i = r_i.
    let mut s: Vec<Scalar> = r.to_vec();
    if let (Some(last_s), Some(c_pi)) = (s.last_mut(), c.last()) {
        *last_s = *alpha - c_pi * x;
    }

    // SPEC §7.2: DLEQ with β = k_{n+1}: A = β·H, A' = β·G,
    // e = H_s(dleq, TR ‖ A ‖ A'), t = β − e·x. Constant-time multiplications;
    // whether this runs depends only on the (public) choice of scheme.
    let dleq = slot.as_ref().map(|(g, _)| {
        let beta = Zeroizing::new(nonce(n64 + 1));
        let a = (h * *beta).compress().to_bytes();
        let a2 = (g * *beta).compress().to_bytes();
        let e = transcript.dleq_challenge(&a, &a2);
        let t = *beta - e * x;
        DleqOut { a, a2, e, t }
    });

    // Un-rotate (left by (n−ρ) mod n) and read c_0 from position 0.
    ct_rotate_left(&mut s, unrot);
    ct_rotate_left(&mut c, unrot);
    let mut ls: Vec<[u8; 32]> = lr.iter().map(|p| p.0).collect();
    let mut rs: Vec<[u8; 32]> = lr.iter().map(|p| p.1).collect();
    ct_rotate_left(&mut ls, unrot);
    ct_rotate_left(&mut rs, unrot);
    let c0 = c.first().copied().unwrap_or(Scalar::ZERO);
    let pairs: Vec<([u8; 32], [u8; 32])> = ls.into_iter().zip(rs).collect();

    let vote_part = match (&slot, &dleq) {
        (Some((_, tag_bytes)), Some(d)) => Some((tag_bytes, d)),
        _ => None,
    };
    Ok(encode(format, &key_image_bytes, vote_part, &c0, &s, &pairs))
}

#[cfg(test)]
mod tests {
    use super::ct_rotate_left;

    #[test]
    fn rotation_matches_naive() {
        for n in 1..40usize {
            for amt in 0..n {
                let mut v: Vec<u64> = (0..n as u64).collect();
                ct_rotate_left(&mut v, amt as u64);
                let want: Vec<u64> = (0..n).map(|j| ((j + amt) % n) as u64).collect();
                assert_eq!(v, want, "n={n} amt={amt}");
            }
        }
    }
}

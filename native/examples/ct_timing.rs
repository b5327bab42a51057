//! dudect-style timing check of signing (evidence, not proof, of SPEC §9):
//! interleaves signatures by the member at canonical index 0 and by the
//! member at index n−1 (the two extremes of the ring rotation), and reports
//! Welch's t statistic of the two timing distributions (after cropping the
//! slowest 10% of each, which on a shared machine is mostly scheduler noise).
//! |t| < 4.5 is the usual "no evidence of a leak" threshold.
//!
//!     cd native && cargo run --release --no-default-features --example ct_timing [n] [samples] [vote]
//!
//! With a third argument `vote`, vote signatures (SPEC §7: bLSAG + slot tag +
//! DLEQ) are timed instead of plain ring signatures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use ringcrypto::hazmat::{sign_vote_with_randomness, sign_with_randomness};
use ringcrypto::{Format, Ring, SecretKey};

fn stats(v: &mut [f64]) -> (f64, f64, usize) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let keep = &v[..v.len() * 9 / 10];
    let n = keep.len() as f64;
    let mean = keep.iter().sum::<f64>() / n;
    let var = keep.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var, keep.len())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(8);
    let samples: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3000);
    let vote = args.get(3).map(|a| a == "vote").unwrap_or(false);
    let keys: Vec<SecretKey> = (0..n)
        .map(|i| SecretKey::from_seed(&[i as u8 + 1; 32]).unwrap())
        .collect();
    let pks: Vec<[u8; 32]> = keys.iter().map(|k| k.public_key()).collect();
    let ring = Ring::new(pks.iter().map(|p| &p[..]), 1024).unwrap();
    let first = keys
        .iter()
        .find(|k| k.public_key() == ring.members()[0])
        .unwrap();
    let last = keys
        .iter()
        .find(|k| k.public_key() == ring.members()[n - 1])
        .unwrap();
    let (mut a, mut b) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    for i in 0..2 * samples {
        let z = [(i % 251) as u8; 32];
        let msg = (i as u64).to_le_bytes();
        let key = if i % 2 == 0 { first } else { last };
        let t0 = Instant::now();
        let sig = if vote {
            sign_vote_with_randomness(key, &ring, b"ctx", b"epoch", 1, &msg, &z, Format::Compact)
        } else {
            sign_with_randomness(key, &ring, b"ctx", &msg, &z, Format::Compact)
        }
        .unwrap();
        let dt = t0.elapsed().as_secs_f64() * 1e6;
        std::hint::black_box(sig);
        if i % 2 == 0 {
            a.push(dt)
        } else {
            b.push(dt)
        }
    }
    let (ma, va, na) = stats(&mut a);
    let (mb, vb, nb) = stats(&mut b);
    let t = (ma - mb) / (va / na as f64 + vb / nb as f64).sqrt();
    let what = if vote { "vote signing" } else { "signing" };
    println!("{what}, ring {n}, {samples} samples per class: index 0 mean {ma:.1} µs, index {} mean {mb:.1} µs, Welch t = {t:.2}", n - 1);
    println!(
        "{}",
        if t.abs() < 4.5 {
            "no evidence of index-dependent timing (|t| < 4.5)"
        } else {
            "POSSIBLE LEAK: |t| >= 4.5"
        }
    );
}

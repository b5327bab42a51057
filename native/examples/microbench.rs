//! Component timings behind the verification cost model (not a test):
//!
//!     cd native && cargo run --release --no-default-features --example microbench
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use curve25519_dalek::ristretto::{RistrettoPoint, VartimeRistrettoPrecomputation};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{VartimeMultiscalarMul, VartimePrecomputedMultiscalarMul};
use ringcrypto::batch::{
    verify_batch, verify_batchable_all, verify_vote_batchable_all, BatchItem, VoteItem,
};
use ringcrypto::hash::key_image_base;
use ringcrypto::{sign, sign_vote, verify, verify_vote, Format, Ring, SecretKey};

fn cpu_now() -> f64 {
    // Thread CPU time would be ideal; process CPU time via /proc is close
    // enough for a single-threaded loop on a shared machine.
    let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn time<F: FnMut()>(name: &str, iters: usize, mut f: F) {
    let w0 = Instant::now();
    let c0 = cpu_now();
    for _ in 0..iters {
        f();
    }
    let wall = w0.elapsed().as_secs_f64() / iters as f64;
    let cpu = (cpu_now() - c0) / iters as f64;
    println!(
        "{name:<44} wall {:>9.2} µs   cpu {:>9.2} µs",
        wall * 1e6,
        cpu * 1e6
    );
}

fn main() {
    let p = RistrettoPoint::mul_base(&Scalar::from(12345u64));
    let q = RistrettoPoint::mul_base(&Scalar::from(999u64));
    let a = Scalar::from_bytes_mod_order([7u8; 32]);
    let b = Scalar::from_bytes_mod_order([9u8; 32]);
    let enc = p.compress();
    time("compress", 20000, || {
        std::hint::black_box(std::hint::black_box(p).compress());
    });
    time("decompress", 20000, || {
        std::hint::black_box(std::hint::black_box(enc).decompress());
    });
    time("double_and_compress_batch(2)", 20000, || {
        std::hint::black_box(RistrettoPoint::double_and_compress_batch([&p, &q]));
    });
    time("vartime aP + bB", 5000, || {
        std::hint::black_box(RistrettoPoint::vartime_double_scalar_mul_basepoint(
            &a, &p, &b,
        ));
    });
    time("vartime aP + bQ (plain)", 5000, || {
        std::hint::black_box(RistrettoPoint::vartime_multiscalar_mul([a, b], [p, q]));
    });
    let pre = VartimeRistrettoPrecomputation::new([p, q]);
    time("vartime aP + bQ (precomputed)", 5000, || {
        std::hint::black_box(pre.vartime_multiscalar_mul([a, b]));
    });
    time("precompute table for 2 points", 2000, || {
        std::hint::black_box(VartimeRistrettoPrecomputation::new([p, q]));
    });
    time("hash_to_group (key_image_base)", 5000, || {
        std::hint::black_box(key_image_base(b"submission-0001"));
    });
    time("ct a*B (table)", 5000, || {
        std::hint::black_box(RistrettoPoint::mul_base(&a));
    });
    time("ct a*P", 5000, || {
        std::hint::black_box(p * a);
    });

    for n in [8usize, 16, 64, 256] {
        let keys: Vec<SecretKey> = (0..n)
            .map(|i| SecretKey::from_seed(&[i as u8 + 1; 32]).unwrap())
            .collect();
        let pks: Vec<[u8; 32]> = keys.iter().map(|k| k.public_key()).collect();
        let ring = Ring::new(pks.iter().map(|p| &p[..]), 1024).unwrap();
        let sig = sign(&keys[0], &ring, b"ctx", b"msg", Format::Compact).unwrap();
        time(&format!("verify compact n={n}"), 2000 / n + 10, || {
            verify(&ring, b"ctx", b"msg", &sig).unwrap();
        });
        time(&format!("sign n={n}"), 1000 / n + 5, || {
            sign(&keys[1], &ring, b"ctx", b"msg", Format::Compact).unwrap();
        });
        // SPEC §8.4: the per-signature fallback check vs a single verification.
        let bsig = sign(&keys[0], &ring, b"ctx", b"msg", Format::Batchable).unwrap();
        let one = [BatchItem {
            ring: &ring,
            ctx: b"ctx",
            msg: b"msg",
            sig: &bsig,
        }];
        time(&format!("verify batchable n={n}"), 2000 / n + 10, || {
            verify(&ring, b"ctx", b"msg", &bsig).unwrap();
        });
        time(
            &format!("one-signature combined check n={n}"),
            2000 / n + 10,
            || {
                assert!(verify_batchable_all(&one));
            },
        );
        let vsig = sign_vote(&keys[0], &ring, b"ctx", b"ep", 0, b"msg", Format::Compact).unwrap();
        let vbsig =
            sign_vote(&keys[0], &ring, b"ctx", b"ep", 0, b"msg", Format::Batchable).unwrap();
        time(&format!("verify_vote compact n={n}"), 2000 / n + 10, || {
            verify_vote(&ring, b"ctx", b"ep", 0, b"msg", &vsig).unwrap();
        });
        time(&format!("sign_vote n={n}"), 1000 / n + 5, || {
            sign_vote(&keys[1], &ring, b"ctx", b"ep", 0, b"msg", Format::Compact).unwrap();
        });
        let vone = [VoteItem {
            ring: &ring,
            ctx: b"ctx",
            epoch: b"ep",
            slot: 0,
            msg: b"msg",
            sig: &vbsig,
        }];
        time(
            &format!("one-vote combined check n={n}"),
            2000 / n + 10,
            || {
                assert!(verify_vote_batchable_all(&vone));
            },
        );
        let count = 8192 / n;
        let sigs: Vec<(Vec<u8>, Vec<u8>)> = (0..count)
            .map(|i| {
                let ctx = format!("submission-{}", i % 8).into_bytes();
                let s = sign(&keys[i % n], &ring, &ctx, b"msg", Format::Batchable).unwrap();
                (ctx, s)
            })
            .collect();
        let items: Vec<BatchItem<'_>> = sigs
            .iter()
            .map(|(c, s)| BatchItem {
                ring: &ring,
                ctx: c,
                msg: b"msg",
                sig: s,
            })
            .collect();
        let w0 = Instant::now();
        let c0 = cpu_now();
        let r = verify_batch(&items, Some(1)).unwrap();
        assert!(r.iter().all(|x| x.is_ok()));
        let wall = w0.elapsed().as_secs_f64();
        let cpu = cpu_now() - c0;
        println!(
            "batch n={n:<4} {count:>5} sigs: {:>8.0} sig/s wall, {:>8.0} sig/s (cpu of calling thread)",
            count as f64 / wall,
            count as f64 / cpu.max(1e-9)
        );
    }
}

//! SPEC §8.4 cost bound and the thread-pool cache bound.
//!
//! * A batch of keyless forged batchable signatures (arbitrary L_i/R_i, the
//!   hash chain closed by hashing: they pass the hash-chain stage) must cost
//!   at most ~3× a batch of valid ones of the same ring size. The verifier
//!   falls back to one randomized check per signature after a failed
//!   combined check (no bisection), so the bound is about 1 + (cost of a
//!   one-signature check / per-signature share of the big check).
//! * `threads=N` for many distinct N must not keep a pool per N.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use ringcrypto::batch::{
    cached_pools, verify_batch, verify_vote_batch, BatchItem, VoteItem, MAX_THREADS,
};
use ringcrypto::{sign, sign_vote, Format};

/// The two tests share the process-wide pool cache: run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn min_time(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn hostile_batch_costs_at_most_about_three_times_a_valid_one() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let n = 16;
    let count = 128;
    let (keys, ring) = keys_and_ring(60_000, n);
    let msgs: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("vote {i}").into_bytes())
        .collect();
    let ctxs: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("sub-{}", i % 8).into_bytes())
        .collect();

    // Plain signatures.
    let valid: Vec<Vec<u8>> = (0..count)
        .map(|i| sign(&keys[i % n], &ring, &ctxs[i], &msgs[i], Format::Batchable).unwrap())
        .collect();
    let forged: Vec<Vec<u8>> = (0..count)
        .map(|i| forged_plain_batchable(&ring, &ctxs[i], &msgs[i], &format!("f{i}")))
        .collect();
    let items = |sigs: &[Vec<u8>]| -> Vec<Vec<u8>> { sigs.to_vec() };
    let run = |sigs: &[Vec<u8>], expect_ok: bool| {
        let it: Vec<BatchItem<'_>> = (0..count)
            .map(|i| BatchItem {
                ring: &ring,
                ctx: &ctxs[i],
                msg: &msgs[i],
                sig: &sigs[i],
            })
            .collect();
        let r = verify_batch(&it, Some(1)).unwrap();
        assert!(r.iter().all(|x| x.is_ok() == expect_ok));
    };
    let (v, f) = (items(&valid), items(&forged));
    let t_valid = min_time(5, || run(&v, true));
    let t_forged = min_time(5, || run(&f, false));
    let ratio = t_forged / t_valid;
    println!(
        "plain ring {n}: valid batch {:.1} ms, all-forged batch {:.1} ms, ratio {ratio:.2}",
        1e3 * t_valid,
        1e3 * t_forged
    );

    // Vote signatures: forged with arbitrary L/R, A, A', T.
    let epochs: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("ep-{}", i % 2).into_bytes())
        .collect();
    let vvalid: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            sign_vote(
                &keys[i % n],
                &ring,
                &ctxs[i],
                &epochs[i],
                (i % 3) as u32,
                &msgs[i],
                Format::Batchable,
            )
            .unwrap()
        })
        .collect();
    let vforged: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            reference_vote(&VoteRecipe {
                ring: &ring,
                ctx: &ctxs[i],
                epoch: &epochs[i],
                slot: (i % 3) as u32,
                msg: &msgs[i],
                signer: None,
                key_image: None,
                tag: None,
                dleq_x: None,
                batchable: true,
                label: &format!("vf{i}"),
            })
        })
        .collect();
    let vrun = |sigs: &[Vec<u8>], expect_ok: bool| {
        let it: Vec<VoteItem<'_>> = (0..count)
            .map(|i| VoteItem {
                ring: &ring,
                ctx: &ctxs[i],
                epoch: &epochs[i],
                slot: (i % 3) as u32,
                msg: &msgs[i],
                sig: &sigs[i],
            })
            .collect();
        let r = verify_vote_batch(&it, Some(1)).unwrap();
        assert!(r.iter().all(|x| x.is_ok() == expect_ok));
    };
    let tv_valid = min_time(5, || vrun(&vvalid, true));
    let tv_forged = min_time(5, || vrun(&vforged, false));
    let vratio = tv_forged / tv_valid;
    println!(
        "vote ring {n}: valid batch {:.1} ms, all-forged batch {:.1} ms, ratio {vratio:.2}",
        1e3 * tv_valid,
        1e3 * tv_forged
    );

    // ~3× is the design bound; 3.5 leaves room for a shared, noisy machine.
    assert!(
        ratio < 3.5,
        "plain: all-forged batch costs {ratio:.2}x a valid one"
    );
    assert!(
        vratio < 3.5,
        "vote: all-forged batch costs {vratio:.2}x a valid one"
    );
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn distinct_thread_counts_do_not_accumulate_pools() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (keys, ring) = keys_and_ring(61_000, 2);
    let sig = sign(&keys[0], &ring, b"c", b"m", Format::Batchable).unwrap();
    let item = [BatchItem {
        ring: &ring,
        ctx: b"c",
        msg: b"m",
        sig: &sig,
    }];
    for t in 1..=40usize {
        assert!(verify_batch(&item, Some(t)).unwrap()[0].is_ok());
        let cached = cached_pools();
        assert!(cached.len() <= 4, "{cached:?}");
        assert!(cached.iter().sum::<usize>() <= MAX_THREADS);
        assert_eq!(cached[0], t);
    }
    assert!(verify_batch(&item, Some(MAX_THREADS)).unwrap()[0].is_ok());
    assert_eq!(cached_pools(), vec![MAX_THREADS]);
    assert!(verify_batch(&item, Some(3)).unwrap()[0].is_ok());
    assert_eq!(cached_pools(), vec![3]); // 3 + 256 would exceed the budget
                                         // Evicted pools' threads exit (asynchronously): the process settles far
                                         // below the 820 threads that one pool per N used to keep.
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while thread_count() > 64 && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(thread_count() <= 64, "{} threads alive", thread_count());
}

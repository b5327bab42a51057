//! Arbitrary bytes as ring, context, epoch, slot, message and vote
//! signature. Properties: no panic; the single and the batch vote verifier
//! agree (same (I, T) on acceptance, both reject otherwise).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcrypto::batch::{verify_vote_batch, VoteItem};
use ringcrypto::{verify_vote, Ring, SecretKey};
use std::sync::OnceLock;

/// Eight valid members, so that most inputs get past ring validation.
fn fixed_keys() -> &'static Vec<[u8; 32]> {
    static K: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    K.get_or_init(|| {
        (1u8..=8)
            .map(|i| {
                SecretKey::from_seed(&[i; 32])
                    .map(|k| k.public_key())
                    .unwrap_or([0; 32])
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let (Some(&n), Some(&mode)) = (data.first(), data.get(1)) else {
        return;
    };
    let n = (n % 8) as usize + 1;
    let mut rest = &data[2..];
    let ring = if mode & 1 == 0 {
        let keys = fixed_keys();
        Ring::new(keys[..n].iter().map(|k| &k[..]), 1024)
    } else {
        if rest.len() < 32 * n {
            return;
        }
        let (members, tail) = rest.split_at(32 * n);
        rest = tail;
        Ring::new(members.chunks(32), (mode as usize >> 1) % 16)
    };
    let Ok(ring) = ring else { return };
    if rest.len() < 7 {
        return;
    }
    let slot = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let (cl, el, ml) = (rest[4] as usize, rest[5] as usize, rest[6] as usize);
    let rest = &rest[7..];
    let (ctx, rest) = rest.split_at(cl.min(rest.len()));
    let (epoch, rest) = rest.split_at(el.min(rest.len()));
    let (msg, sig) = rest.split_at(ml.min(rest.len()));

    let single = verify_vote(&ring, ctx, epoch, slot, msg, sig);
    let item = [VoteItem {
        ring: &ring,
        ctx,
        epoch,
        slot,
        msg,
        sig,
    }];
    let batch = verify_vote_batch(&item, Some(1)).map(|mut v| v.remove(0));
    match (single, batch) {
        (Ok(a), Ok(Ok(b))) => assert_eq!(a, b),
        (Err(_), Ok(Err(_))) => {}
        (s, b) => panic!("single {s:?} vs batch {b:?}"),
    }
});

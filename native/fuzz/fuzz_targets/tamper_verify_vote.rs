//! Mutations of valid compact and batchable vote signatures (and of the
//! context, epoch, slot and message). Properties: no panic; the only byte
//! strings accepted for the original inputs are the two original encodings
//! (same randomness, so the batchable one stripped of A, A', L, R with tag
//! 0x11 *is* the compact one, SPEC §7.3); single and batch agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcrypto::batch::{verify_vote_batch, VoteItem};
use ringcrypto::hazmat::sign_vote_with_randomness;
use ringcrypto::{verify_vote, Format, Ring, SecretKey};
use std::sync::OnceLock;

struct Fixture {
    ring: Ring,
    sigs: [Vec<u8>; 2],
}

fn fixture() -> &'static Option<Fixture> {
    static F: OnceLock<Option<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let keys: Vec<SecretKey> = (1u8..=4)
            .filter_map(|i| SecretKey::from_seed(&[i; 32]).ok())
            .collect();
        let pks: Vec<[u8; 32]> = keys.iter().map(|k| k.public_key()).collect();
        let ring = Ring::new(pks.iter().map(|p| &p[..]), 1024).ok()?;
        let sign =
            |f| sign_vote_with_randomness(&keys[2], &ring, b"ctx", b"ep", 1, b"msg", &[7; 32], f);
        let c = sign(Format::Compact).ok()?;
        let b = sign(Format::Batchable).ok()?;
        Some(Fixture { ring, sigs: [c, b] })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(f) = fixture() else { return };
    let Some(&sel) = data.first() else { return };
    let original = &f.sigs[(sel & 1) as usize];
    let mut sig = original.clone();
    let mut ctx = b"ctx".to_vec();
    let mut epoch = b"ep".to_vec();
    let mut msg = b"msg".to_vec();
    let mut slot = 1u32;
    for op in data[1..].chunks_exact(3) {
        let pos = u16::from_le_bytes([op[0], op[1]]) as usize;
        match op[0] >> 6 {
            0 | 1 => {
                if let Some(b) = sig.get_mut(pos % original.len()) {
                    *b ^= op[2]
                }
            }
            2 => match sel >> 1 & 3 {
                0 => msg.push(op[2]),
                1 => ctx.push(op[2]),
                2 => epoch.push(op[2]),
                _ => slot ^= u32::from(op[2]),
            },
            _ => sig.truncate(pos % (original.len() + 1)),
        }
    }
    let unchanged =
        f.sigs.contains(&sig) && ctx == b"ctx" && epoch == b"ep" && slot == 1 && msg == b"msg";
    let single = verify_vote(&f.ring, &ctx, &epoch, slot, &msg, &sig);
    assert_eq!(single.is_ok(), unchanged, "{single:?}");
    let item = [VoteItem {
        ring: &f.ring,
        ctx: &ctx,
        epoch: &epoch,
        slot,
        msg: &msg,
        sig: &sig,
    }];
    if let Ok(v) = verify_vote_batch(&item, Some(1)) {
        assert_eq!(v[0].is_ok(), unchanged);
    }
});

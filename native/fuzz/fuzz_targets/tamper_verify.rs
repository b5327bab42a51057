//! Mutations of valid compact and batchable signatures (and of the message
//! and context). Properties: no panic; the only byte strings accepted for
//! (ctx, msg) are the two original encodings (SPEC §6.4: a batchable
//! signature stripped of L/R with tag 0x01 *is* the compact one — found by
//! this target); single and batch verification agree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcrypto::batch::{verify_batch, BatchItem};
use ringcrypto::hazmat::sign_with_randomness;
use ringcrypto::{verify, Format, Ring, SecretKey};
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
        let c = sign_with_randomness(&keys[2], &ring, b"ctx", b"msg", &[7; 32], Format::Compact)
            .ok()?;
        let b = sign_with_randomness(&keys[2], &ring, b"ctx", b"msg", &[7; 32], Format::Batchable)
            .ok()?;
        Some(Fixture { ring, sigs: [c, b] })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(f) = fixture() else { return };
    let Some(&sel) = data.first() else { return };
    let original = &f.sigs[(sel & 1) as usize];
    let mut sig = original.clone();
    let mut ctx = b"ctx".to_vec();
    let mut msg = b"msg".to_vec();
    for op in data[1..].chunks_exact(3) {
        let pos = u16::from_le_bytes([op[0], op[1]]) as usize;
        match op[0] >> 6 {
            0 | 1 => {
                if let Some(b) = sig.get_mut(pos % original.len()) {
                    *b ^= op[2]
                }
            }
            2 if sel & 2 != 0 => msg.push(op[2]),
            2 => ctx.push(op[2]),
            _ => sig.truncate(pos % (original.len() + 1)),
        }
    }
    let unchanged = f.sigs.contains(&sig) && ctx == b"ctx" && msg == b"msg";
    let single = verify(&f.ring, &ctx, &msg, &sig);
    assert_eq!(single.is_ok(), unchanged, "{single:?}");
    let item = [BatchItem {
        ring: &f.ring,
        ctx: &ctx,
        msg: &msg,
        sig: &sig,
    }];
    if let Ok(v) = verify_batch(&item, Some(1)) {
        assert_eq!(v[0].is_ok(), unchanged);
    }
});

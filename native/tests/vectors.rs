//! Re-derives every entry of native/test-vectors.json (SPEC §10) from its
//! inputs and checks it bit for bit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ringcrypto::batch::{verify_vote_batch, VoteItem};
use ringcrypto::hash::{expand_message_xmd, hash_to_group, key_image_base, slot_base};
use ringcrypto::hazmat::{sign_vote_with_randomness, sign_with_randomness};
use ringcrypto::{verify, verify_vote, Format, Ring, SecretKey};
use serde_json::Value;
use sha2::{Digest, Sha512};

fn load() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/test-vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn ring_by_name(doc: &Value, name: &str) -> Ring {
    let r = doc["rings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap();
    let pks: Vec<Vec<u8>> = r["public_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(unhex)
        .collect();
    Ring::new(pks.iter().map(|p| &p[..]), 1024).unwrap()
}

#[test]
fn hash_vectors() {
    let doc = load();
    for v in doc["expand_message_xmd"].as_array().unwrap() {
        let out = expand_message_xmd(&unhex(&v["msg"]), v["dst"].as_str().unwrap().as_bytes(), 64)
            .unwrap();
        assert_eq!(out, unhex(&v["uniform_bytes"]));
    }
    for v in doc["hash_to_group"].as_array().unwrap() {
        let p = hash_to_group(&unhex(&v["msg"]), v["dst"].as_str().unwrap().as_bytes()).unwrap();
        assert_eq!(p.compress().as_bytes().to_vec(), unhex(&v["point"]));
    }
}

#[test]
fn key_and_image_vectors() {
    let doc = load();
    let keys = doc["keys"].as_array().unwrap();
    for (k, v) in keys.iter().enumerate() {
        let seed: [u8; 32] = Sha512::digest(format!("ringtally-v2 test seed {k}").as_bytes())[..32]
            .try_into()
            .unwrap();
        assert_eq!(seed.to_vec(), unhex(&v["seed"]));
        let key = SecretKey::from_seed(&seed).unwrap();
        assert_eq!(key.export_secret().to_vec(), unhex(&v["secret"]));
        assert_eq!(key.public_key().to_vec(), unhex(&v["public_key"]));
        let again = SecretKey::from_bytes(&unhex(&v["secret"])).unwrap();
        assert_eq!(again.public_key(), key.public_key());
    }
    for v in doc["key_images"].as_array().unwrap() {
        let k = v["key"].as_u64().unwrap() as usize;
        let key = SecretKey::from_bytes(&unhex(&keys[k]["secret"])).unwrap();
        let ctx = unhex(&v["context"]);
        assert_eq!(key.key_image(&ctx).to_vec(), unhex(&v["key_image"]));
        assert_eq!(
            key_image_base(&ctx).compress().as_bytes().to_vec(),
            unhex(&v["key_image_base"])
        );
    }
    let slot_tags = doc["slot_tags"].as_array().unwrap();
    assert!(slot_tags.len() >= 12);
    for v in slot_tags {
        let k = v["key"].as_u64().unwrap() as usize;
        let key = SecretKey::from_bytes(&unhex(&keys[k]["secret"])).unwrap();
        let epoch = unhex(&v["epoch"]);
        let slot = u32::try_from(v["slot"].as_u64().unwrap()).unwrap();
        assert_eq!(
            key.slot_tag(&epoch, slot).unwrap().to_vec(),
            unhex(&v["slot_tag"])
        );
        // SPEC §4.2: G_slot = hash_to_group(lp(epoch) ‖ u32be(j), DST).
        let mut msg = (epoch.len() as u32).to_be_bytes().to_vec();
        msg.extend_from_slice(&epoch);
        msg.extend_from_slice(&slot.to_be_bytes());
        let g = hash_to_group(&msg, b"ringtally-v2:slot-base").unwrap();
        assert_eq!(g.compress().as_bytes().to_vec(), unhex(&v["slot_base"]));
        assert_eq!(slot_base(&epoch, slot).unwrap(), g);
    }
}

#[test]
fn vote_signature_vectors() {
    let doc = load();
    let keys = doc["keys"].as_array().unwrap();
    let sigs = doc["vote_signatures"].as_array().unwrap();
    let sizes: std::collections::BTreeSet<usize> = sigs
        .iter()
        .map(|s| ring_by_name(&doc, s["ring"].as_str().unwrap()).len())
        .collect();
    assert_eq!(sizes.into_iter().collect::<Vec<_>>(), vec![1, 2, 3, 16]);
    for s in sigs {
        let ring = ring_by_name(&doc, s["ring"].as_str().unwrap());
        let key = SecretKey::from_bytes(&unhex(
            &keys[s["signer_key"].as_u64().unwrap() as usize]["secret"],
        ))
        .unwrap();
        assert_eq!(
            ring.index_of(&key.public_key()),
            Some(s["signer_index"].as_u64().unwrap() as usize)
        );
        let label = s["randomness_label"].as_str().unwrap();
        let z: [u8; 32] = Sha512::digest(format!("ringtally-v2 test z {label}").as_bytes())[..32]
            .try_into()
            .unwrap();
        assert_eq!(z.to_vec(), unhex(&s["randomness"]));
        let format = if s["format"] == "compact" {
            Format::Compact
        } else {
            Format::Batchable
        };
        let (ctx, epoch, msg) = (
            unhex(&s["context"]),
            unhex(&s["epoch"]),
            unhex(&s["message"]),
        );
        let slot = u32::try_from(s["slot"].as_u64().unwrap()).unwrap();
        let sig =
            sign_vote_with_randomness(&key, &ring, &ctx, &epoch, slot, &msg, &z, format).unwrap();
        assert_eq!(sig, unhex(&s["signature"]), "{label}");
        let tags = verify_vote(&ring, &ctx, &epoch, slot, &msg, &sig).unwrap();
        assert_eq!(tags.key_image.to_vec(), unhex(&s["key_image"]));
        assert_eq!(tags.slot_tag.to_vec(), unhex(&s["slot_tag"]));
        let item = [VoteItem {
            ring: &ring,
            ctx: &ctx,
            epoch: &epoch,
            slot,
            msg: &msg,
            sig: &sig,
        }];
        assert_eq!(
            verify_vote_batch(&item, Some(1)).unwrap()[0]
                .as_ref()
                .unwrap(),
            &tags
        );
    }
}

#[test]
fn negative_vote_vectors() {
    let doc = load();
    let negs = doc["negative_vote_signatures"].as_array().unwrap();
    assert!(negs.len() >= 25);
    for v in negs {
        let ring = ring_by_name(&doc, v["ring"].as_str().unwrap());
        let (ctx, epoch, msg, sig) = (
            unhex(&v["context"]),
            unhex(&v["epoch"]),
            unhex(&v["message"]),
            unhex(&v["signature"]),
        );
        let slot = u32::try_from(v["slot"].as_u64().unwrap()).unwrap();
        let e = verify_vote(&ring, &ctx, &epoch, slot, &msg, &sig).unwrap_err();
        assert_eq!(
            format!("{:?}", e.class()),
            v["error_class"].as_str().unwrap(),
            "{}",
            v["name"]
        );
        assert_eq!(
            e.kind().as_str(),
            v["error_kind"].as_str().unwrap(),
            "{}",
            v["name"]
        );
        let item = [VoteItem {
            ring: &ring,
            ctx: &ctx,
            epoch: &epoch,
            slot,
            msg: &msg,
            sig: &sig,
        }];
        assert!(
            verify_vote_batch(&item, Some(1)).unwrap()[0].is_err(),
            "{}",
            v["name"]
        );
    }
}

#[test]
fn ring_and_signature_vectors() {
    let doc = load();
    let keys = doc["keys"].as_array().unwrap();
    for r in doc["rings"].as_array().unwrap() {
        let pks: Vec<Vec<u8>> = r["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| unhex(&keys[k.as_u64().unwrap() as usize]["public_key"]))
            .collect();
        let ring = Ring::new(pks.iter().map(|p| &p[..]), 1024).unwrap();
        let want: Vec<Vec<u8>> = r["public_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(unhex)
            .collect();
        assert_eq!(
            ring.members()
                .iter()
                .map(|m| m.to_vec())
                .collect::<Vec<_>>(),
            want
        );
        assert_eq!(ring.digest().to_vec(), unhex(&r["digest"]));
    }
    let sigs = doc["signatures"].as_array().unwrap();
    let sizes: std::collections::BTreeSet<usize> = sigs
        .iter()
        .map(|s| ring_by_name(&doc, s["ring"].as_str().unwrap()).len())
        .collect();
    assert_eq!(sizes.into_iter().collect::<Vec<_>>(), vec![1, 2, 3, 16]);
    for s in sigs {
        let ring = ring_by_name(&doc, s["ring"].as_str().unwrap());
        let key = SecretKey::from_bytes(&unhex(
            &keys[s["signer_key"].as_u64().unwrap() as usize]["secret"],
        ))
        .unwrap();
        assert_eq!(
            ring.index_of(&key.public_key()),
            Some(s["signer_index"].as_u64().unwrap() as usize)
        );
        let label = s["randomness_label"].as_str().unwrap();
        let z: [u8; 32] = Sha512::digest(format!("ringtally-v2 test z {label}").as_bytes())[..32]
            .try_into()
            .unwrap();
        assert_eq!(z.to_vec(), unhex(&s["randomness"]));
        let format = if s["format"] == "compact" {
            Format::Compact
        } else {
            Format::Batchable
        };
        let (ctx, msg) = (unhex(&s["context"]), unhex(&s["message"]));
        let sig = sign_with_randomness(&key, &ring, &ctx, &msg, &z, format).unwrap();
        assert_eq!(sig, unhex(&s["signature"]), "{label}");
        assert_eq!(
            verify(&ring, &ctx, &msg, &sig).unwrap().to_vec(),
            unhex(&s["key_image"])
        );
    }
}

#[test]
fn negative_vectors() {
    let doc = load();
    for v in doc["negative_signatures"].as_array().unwrap() {
        let ring = ring_by_name(&doc, v["ring"].as_str().unwrap());
        let e = verify(
            &ring,
            &unhex(&v["context"]),
            &unhex(&v["message"]),
            &unhex(&v["signature"]),
        )
        .unwrap_err();
        assert_eq!(
            format!("{:?}", e.class()),
            v["error_class"].as_str().unwrap(),
            "{}",
            v["name"]
        );
        assert_eq!(
            e.kind().as_str(),
            v["error_kind"].as_str().unwrap(),
            "{}",
            v["name"]
        );
    }
    for v in doc["negative_rings"].as_array().unwrap() {
        let pks: Vec<Vec<u8>> = v["public_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(unhex)
            .collect();
        let e = Ring::new(
            pks.iter().map(|p| &p[..]),
            v["max_size"].as_u64().unwrap() as usize,
        )
        .unwrap_err();
        assert_eq!(
            e.kind().as_str(),
            v["error_kind"].as_str().unwrap(),
            "{}",
            v["name"]
        );
        assert_eq!(e.detail(), v["detail"].as_str().unwrap(), "{}", v["name"]);
    }
}

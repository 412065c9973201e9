//! Signed, hash-linked audit trail.
//!
//! Every event names its actor, action, subject and reason, the state before and
//! after, the policy hash in force, and when. Events form *chains*, one per subject
//! (a request, a user): each event carries its sequence number and the hash of the
//! previous event in its chain, and is signed. In deployment the signature is made
//! by a KMS asymmetric key (ECDSA P-256, `kms:Sign`): no function and no operator
//! ever holds signing material, and verifiers need only the public key. Tests and
//! the in-memory fakes sign with a local Ed25519 key. Because chains are per
//! subject, writers on different subjects never contend; writers on one subject use
//! an optimistic append (the store refuses a second event at the same sequence) and
//! retry on top of the new head — no global lock.
//!
//! [`verify_chain`] detects an edited event (hash or signature mismatch), a deleted
//! event (sequence gap or broken link), and reordered events (broken link). Deleting
//! the *newest* events of a chain is detected only against a known head
//! ([`ChainHead`]), which a verifier keeps from its last run.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::policy::PolicyHash;

/// `prev_hash` of the first event of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, before it is sealed into a chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditDraft {
    /// The chain (subject scope), e.g. `request#req-…` or `user#alice`.
    pub chain: String,
    /// Names the fact recorded, unique within the chain (`request.approved@v3`):
    /// recording the same key again is a no-op, so retried handlers audit once.
    pub key: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub reason: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// The newest event of a chain, as far as a reader knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: String,
}

impl std::fmt::Display for ChainHead {
    /// `event #3 (hash 1f2e3d4c…)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let short: String = self.hash.chars().take(12).collect();
        write!(f, "event #{} (hash {short}…)", self.seq)
    }
}

/// A sealed audit event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub chain: String,
    pub seq: u64,
    pub key: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub reason: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub policy_hash: PolicyHash,
    pub at: DateTime<Utc>,
    pub prev_hash: String,
    pub key_id: String,
    /// Hex SHA-256 of the canonical JSON of every field above.
    pub hash: String,
    /// Hex signature over `hash`'s 32 bytes: Ed25519, or ECDSA P-256 with SHA-256
    /// (DER) for a KMS key.
    pub signature: String,
}

/// The signed content: every field except `hash` and `signature`, in a fixed order.
#[derive(Serialize)]
struct Content<'a> {
    chain: &'a str,
    seq: u64,
    key: &'a str,
    actor: &'a str,
    action: &'a str,
    subject: &'a str,
    reason: &'a str,
    before: &'a serde_json::Value,
    after: &'a serde_json::Value,
    policy_hash: &'a PolicyHash,
    at: &'a DateTime<Utc>,
    prev_hash: &'a str,
    key_id: &'a str,
}

impl AuditEvent {
    fn content_hash(&self) -> [u8; 32] {
        let content = Content {
            chain: &self.chain,
            seq: self.seq,
            key: &self.key,
            actor: &self.actor,
            action: &self.action,
            subject: &self.subject,
            reason: &self.reason,
            before: &self.before,
            after: &self.after,
            policy_hash: &self.policy_hash,
            at: &self.at,
            prev_hash: &self.prev_hash,
            key_id: &self.key_id,
        };
        // Serializing plain data into a Vec cannot fail; JSON object keys inside
        // `before`/`after` come out sorted, so the bytes are canonical.
        let bytes = serde_json::to_vec(&content).unwrap_or_default();
        Sha256::digest(bytes).into()
    }

    /// This event as the head of its chain.
    pub fn head(&self) -> ChainHead {
        ChainHead {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

/// A signer that keeps its private key elsewhere (a KMS asymmetric key). It signs
/// the message with ECDSA P-256 over SHA-256 and returns the DER signature.
pub trait RemoteSigner: Send + Sync {
    fn sign<'a>(
        &'a self,
        message: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, KeyError>> + Send + 'a>>;
    /// The public key, DER SubjectPublicKeyInfo, for verifiers; `None` when the
    /// signer was made without reading it (a Lambda function skips that call at
    /// start-up, and reads it only when it first verifies).
    fn public_key_der(&self) -> Option<&[u8]>;
    /// The public key read from where the private key lives, for a signer made
    /// without it that must now verify (a grant or a restore checks what a table
    /// holds against the signed trail).
    fn read_public_key_der<'a>(
        &'a self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, KeyError>> + Send + 'a>> {
        let known = self.public_key_der().map(<[u8]>::to_vec);
        Box::pin(async move {
            known.ok_or_else(|| KeyError::Unreadable("the signer holds no public key".into()))
        })
    }
}

#[derive(Clone)]
enum Backend {
    Ed25519(Box<SigningKey>),
    Remote(Arc<dyn RemoteSigner>),
}

/// Signs audit events: with a KMS key in deployment, a local Ed25519 key in tests.
#[derive(Clone)]
pub struct AuditSigner {
    key_id: String,
    backend: Backend,
}

impl fmt::Debug for AuditSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSigner")
            .field("key_id", &self.key_id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Problems with key material, or with the signer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("audit signing seed must be 64 hex characters (32 bytes)")]
    BadSeed,
    #[error("audit verifying key is not a valid Ed25519 or P-256 public key")]
    BadPublicKey,
    #[error("the system random number generator failed")]
    Rng,
    /// The remote signer (KMS) could not sign now; retry.
    #[error("the audit signing key could not sign: {0}")]
    Unavailable(String),
    /// The remote signer refused (permissions, disabled key): not retried.
    #[error("the audit signing key refused to sign: {0}")]
    Refused(String),
    /// A verifier could not read the key's public half (no access, no such key,
    /// the service unreachable); the text says which.
    #[error("could not read the audit key's public half: {0}")]
    Unreadable(String),
}

impl AuditSigner {
    /// A local signer from a 32-byte hex seed (tests, in-memory fakes).
    pub fn from_seed_hex(key_id: impl Into<String>, seed_hex: &str) -> Result<Self, KeyError> {
        let bytes: [u8; 32] = hex::decode(seed_hex.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(KeyError::BadSeed)?;
        Ok(Self {
            key_id: key_id.into(),
            backend: Backend::Ed25519(Box::new(SigningKey::from_bytes(&bytes))),
        })
    }

    /// A signer whose key never leaves `remote` (KMS); `key_id` names it in events.
    pub fn remote(key_id: impl Into<String>, remote: Arc<dyn RemoteSigner>) -> Self {
        Self {
            key_id: key_id.into(),
            backend: Backend::Remote(remote),
        }
    }

    /// A fresh random local key; returns the signer and its seed in hex.
    pub fn generate(key_id: impl Into<String>) -> Result<(Self, String), KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|_| KeyError::Rng)?;
        let seed_hex = hex::encode(seed);
        Ok((Self::from_seed_hex(key_id, &seed_hex)?, seed_hex))
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `verifier` trusting this signer's public key under its key id.
    pub fn trusted_by(&self, verifier: AuditVerifier) -> Result<AuditVerifier, KeyError> {
        match &self.backend {
            Backend::Ed25519(key) => {
                verifier.trust(&self.key_id, &hex::encode(key.verifying_key().to_bytes()))
            }
            Backend::Remote(remote) => verifier.trust_p256_der(
                &self.key_id,
                remote.public_key_der().ok_or(KeyError::BadPublicKey)?,
            ),
        }
    }

    /// A verifier trusting this signer's key, its public half read from the key's
    /// home (KMS) when the signer was made without it.
    pub async fn verifier(&self) -> Result<AuditVerifier, KeyError> {
        match &self.backend {
            Backend::Ed25519(_) => self.trusted_by(AuditVerifier::new()),
            Backend::Remote(remote) => {
                let der = remote.read_public_key_der().await?;
                AuditVerifier::new().trust_p256_der(&self.key_id, &der)
            }
        }
    }

    /// The public half, hex: Ed25519 bytes, or the P-256 key's DER.
    pub fn public_key_hex(&self) -> String {
        match &self.backend {
            Backend::Ed25519(key) => hex::encode(key.verifying_key().to_bytes()),
            Backend::Remote(remote) => remote.public_key_der().map(hex::encode).unwrap_or_default(),
        }
    }

    /// Seals a draft on top of `head` (`None` for a new chain).
    pub async fn seal(
        &self,
        draft: AuditDraft,
        policy_hash: &PolicyHash,
        head: Option<&ChainHead>,
    ) -> Result<AuditEvent, KeyError> {
        let mut event = AuditEvent {
            chain: draft.chain,
            seq: head.map_or(0, |h| h.seq + 1),
            key: draft.key,
            actor: draft.actor,
            action: draft.action,
            subject: draft.subject,
            reason: draft.reason,
            before: draft.before,
            after: draft.after,
            policy_hash: policy_hash.clone(),
            at: draft.at,
            prev_hash: head.map_or_else(|| GENESIS.to_owned(), |h| h.hash.clone()),
            key_id: self.key_id.clone(),
            hash: String::new(),
            signature: String::new(),
        };
        let digest = event.content_hash();
        event.hash = hex::encode(digest);
        event.signature = match &self.backend {
            Backend::Ed25519(key) => hex::encode(key.sign(&digest).to_bytes()),
            Backend::Remote(remote) => hex::encode(remote.sign(&digest).await?),
        };
        Ok(event)
    }
}

#[derive(Clone, Debug)]
enum PublicKey {
    Ed25519(VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

/// Public keys by key id, so events signed before a rotation still verify.
#[derive(Clone, Debug, Default)]
pub struct AuditVerifier {
    keys: BTreeMap<String, PublicKey>,
}

impl AuditVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts `public_key_hex` for events signed as `key_id`.
    pub fn trust(
        mut self,
        key_id: impl Into<String>,
        public_key_hex: &str,
    ) -> Result<Self, KeyError> {
        let bytes: [u8; 32] = hex::decode(public_key_hex.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(KeyError::BadPublicKey)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::BadPublicKey)?;
        self.keys.insert(key_id.into(), PublicKey::Ed25519(key));
        Ok(self)
    }

    /// Trusts a P-256 public key (DER SubjectPublicKeyInfo, as KMS `GetPublicKey`
    /// returns it) for events signed as `key_id`.
    pub fn trust_p256_der(
        mut self,
        key_id: impl Into<String>,
        der: &[u8],
    ) -> Result<Self, KeyError> {
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(der)
            .map_err(|_| KeyError::BadPublicKey)?;
        self.keys.insert(key_id.into(), PublicKey::P256(key));
        Ok(self)
    }
}

/// How a chain failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("event at position {position} belongs to chain `{found}`, not `{expected}`")]
    WrongChain {
        position: usize,
        expected: String,
        found: String,
    },
    #[error(
        "event at position {position} has sequence {found}, expected {expected}: events are missing or out of order"
    )]
    Sequence {
        position: usize,
        expected: u64,
        found: u64,
    },
    #[error("event {seq} does not link to the event before it: an event was removed or reordered")]
    BrokenLink { seq: u64 },
    #[error("event {seq} was altered: its content no longer matches its hash")]
    Altered { seq: u64 },
    #[error("event {seq} has an invalid signature")]
    BadSignature { seq: u64 },
    #[error("event {seq} is signed with unknown key `{key_id}`")]
    UnknownKey { seq: u64, key_id: String },
    #[error(
        "chain ends {}, but a previous verification saw it reach {expected}: newest events were removed",
        found.as_ref().map_or_else(|| "empty".to_owned(), |f| format!("at {f}"))
    )]
    Truncated {
        expected: ChainHead,
        found: Option<ChainHead>,
    },
}

/// Verifies a whole chain, in sequence order, optionally against a head known from
/// an earlier run. Returns the verified head (`None` for an empty chain).
pub fn verify_chain(
    chain: &str,
    events: &[AuditEvent],
    verifier: &AuditVerifier,
    known_head: Option<&ChainHead>,
) -> Result<Option<ChainHead>, ChainError> {
    let mut prev_hash = GENESIS.to_owned();
    for (position, event) in events.iter().enumerate() {
        if event.chain != chain {
            return Err(ChainError::WrongChain {
                position,
                expected: chain.to_owned(),
                found: event.chain.clone(),
            });
        }
        let expected = position as u64;
        if event.seq != expected {
            return Err(ChainError::Sequence {
                position,
                expected,
                found: event.seq,
            });
        }
        if event.prev_hash != prev_hash {
            return Err(ChainError::BrokenLink { seq: event.seq });
        }
        let digest = event.content_hash();
        if hex::encode(digest) != event.hash {
            return Err(ChainError::Altered { seq: event.seq });
        }
        let key = verifier
            .keys
            .get(&event.key_id)
            .ok_or_else(|| ChainError::UnknownKey {
                seq: event.seq,
                key_id: event.key_id.clone(),
            })?;
        let bad = ChainError::BadSignature { seq: event.seq };
        let signature = hex::decode(&event.signature).map_err(|_| bad.clone())?;
        match key {
            PublicKey::Ed25519(key) => {
                let signature = <[u8; 64]>::try_from(signature)
                    .map(|b| Signature::from_bytes(&b))
                    .map_err(|_| bad.clone())?;
                key.verify_strict(&digest, &signature)
                    .map_err(|_| bad.clone())?;
            }
            PublicKey::P256(key) => {
                let signature =
                    p256::ecdsa::Signature::from_der(&signature).map_err(|_| bad.clone())?;
                key.verify(&digest, &signature).map_err(|_| bad.clone())?;
            }
        }
        prev_hash = event.hash.clone();
    }
    let head = events.last().map(AuditEvent::head);
    if let Some(known) = known_head {
        let still_there = events
            .get(known.seq as usize)
            .is_some_and(|e| e.hash == known.hash);
        if !still_there {
            return Err(ChainError::Truncated {
                expected: known.clone(),
                found: head,
            });
        }
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::monday_at;
    use proptest::prelude::*;

    fn signer() -> AuditSigner {
        AuditSigner::from_seed_hex("k1", &"11".repeat(32)).unwrap()
    }

    fn verifier() -> AuditVerifier {
        AuditVerifier::new()
            .trust("k1", &signer().public_key_hex())
            .unwrap()
    }

    fn chain_of(n: usize) -> Vec<AuditEvent> {
        let s = signer();
        let policy = PolicyHash::of(b"policy");
        let mut events: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let draft = AuditDraft {
                chain: "request#r1".into(),
                key: format!("step-{i}"),
                actor: format!("actor{i}"),
                action: "approve".into(),
                subject: "req-1".into(),
                reason: format!("step {i}"),
                before: serde_json::json!({"status": "pending", "n": i}),
                after: serde_json::json!({"status": "approved", "n": i}),
                at: monday_at(10),
            };
            let head = events.last().map(AuditEvent::head);
            events.push(crate::testing::block_on(s.seal(draft, &policy, head.as_ref())).unwrap());
        }
        events
    }

    #[test]
    fn an_intact_chain_verifies() {
        let events = chain_of(4);
        let head = verify_chain("request#r1", &events, &verifier(), None)
            .unwrap()
            .unwrap();
        assert_eq!(head.seq, 3);
        assert_eq!(events[0].prev_hash, GENESIS);
        assert_eq!(events[1].prev_hash, events[0].hash);
        // Survives storage as JSON.
        let json = serde_json::to_string(&events).unwrap();
        let back: Vec<AuditEvent> = serde_json::from_str(&json).unwrap();
        assert!(verify_chain("request#r1", &back, &verifier(), Some(&head)).is_ok());
    }

    #[test]
    fn edits_are_detected() {
        let mut events = chain_of(3);
        events[1].reason = "nothing to see".into();
        assert_eq!(
            verify_chain("request#r1", &events, &verifier(), None),
            Err(ChainError::Altered { seq: 1 })
        );
        let mut events = chain_of(3);
        events[2].after = serde_json::json!({"status": "denied"});
        assert!(verify_chain("request#r1", &events, &verifier(), None).is_err());
    }

    #[test]
    fn resealing_with_another_key_is_detected() {
        let mut events = chain_of(2);
        let forger = AuditSigner::from_seed_hex("k1", &"22".repeat(32)).unwrap();
        let head = events[0].head();
        let draft = AuditDraft {
            chain: "request#r1".into(),
            key: "forged".into(),
            actor: "mallory".into(),
            action: "approve".into(),
            subject: "req-1".into(),
            reason: "forged".into(),
            before: serde_json::Value::Null,
            after: serde_json::Value::Null,
            at: monday_at(10),
        };
        events[1] =
            crate::testing::block_on(forger.seal(draft, &PolicyHash::of(b"policy"), Some(&head)))
                .unwrap();
        assert_eq!(
            verify_chain("request#r1", &events, &verifier(), None),
            Err(ChainError::BadSignature { seq: 1 })
        );
    }

    #[test]
    fn deletion_and_reordering_are_detected() {
        let mut events = chain_of(4);
        events.remove(1);
        assert!(matches!(
            verify_chain("request#r1", &events, &verifier(), None),
            Err(ChainError::Sequence { position: 1, .. })
        ));
        let mut events = chain_of(4);
        events.swap(1, 2);
        assert!(verify_chain("request#r1", &events, &verifier(), None).is_err());
        // Renumbering after a deletion still breaks the link.
        let mut events = chain_of(4);
        events.remove(1);
        for (i, e) in events.iter_mut().enumerate() {
            e.seq = i as u64;
        }
        assert!(verify_chain("request#r1", &events, &verifier(), None).is_err());
    }

    #[test]
    fn tail_truncation_is_detected_against_a_known_head() {
        let events = chain_of(4);
        let head = events[3].head();
        let err = verify_chain("request#r1", &events[..3], &verifier(), Some(&head)).unwrap_err();
        assert!(matches!(err, ChainError::Truncated { .. }));
        // Said for a person: which event each side reached, no Rust Debug text.
        let said = err.to_string();
        assert!(
            said.starts_with("chain ends at event #2 (hash ")
                && said.contains("saw it reach event #3 (hash ")
                && !said.contains("ChainHead")
                && !said.contains("Some("),
            "{said}"
        );
    }

    /// A KMS stand-in: an ECDSA P-256 key held by the "service".
    struct P256Remote {
        key: p256::ecdsa::SigningKey,
        public: Vec<u8>,
    }

    impl P256Remote {
        fn new(byte: u8) -> Self {
            use p256::pkcs8::EncodePublicKey;
            let key = p256::ecdsa::SigningKey::from_bytes(&[byte; 32].into()).unwrap();
            let public = p256::PublicKey::from(key.verifying_key())
                .to_public_key_der()
                .unwrap()
                .as_bytes()
                .to_vec();
            Self { key, public }
        }
    }

    impl RemoteSigner for P256Remote {
        fn sign<'a>(
            &'a self,
            message: &'a [u8],
        ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, KeyError>> + Send + 'a>> {
            use p256::ecdsa::signature::Signer as _;
            let signature: p256::ecdsa::Signature = self.key.sign(message);
            Box::pin(async move { Ok(signature.to_der().as_bytes().to_vec()) })
        }
        fn public_key_der(&self) -> Option<&[u8]> {
            Some(&self.public)
        }
    }

    #[test]
    fn remote_p256_signatures_verify_with_the_public_key_only() {
        let remote = AuditSigner::remote("kms-key", Arc::new(P256Remote::new(7)));
        let draft = |reason: &str| AuditDraft {
            chain: "user#jdoe".into(),
            key: reason.into(),
            actor: "revocation".into(),
            action: "revocation.verified".into(),
            subject: "jdoe".into(),
            reason: reason.into(),
            before: serde_json::Value::Null,
            after: serde_json::Value::Null,
            at: monday_at(10),
        };
        let policy = PolicyHash::of(b"policy");
        let first = crate::testing::block_on(remote.seal(draft("a"), &policy, None)).unwrap();
        let second =
            crate::testing::block_on(remote.seal(draft("b"), &policy, Some(&first.head())))
                .unwrap();
        let events = vec![first, second];
        let trusting = remote.trusted_by(AuditVerifier::new()).unwrap();
        assert!(verify_chain("user#jdoe", &events, &trusting, None).is_ok());
        // Another P-256 key under the same id does not verify.
        let other = AuditSigner::remote("kms-key", Arc::new(P256Remote::new(9)));
        let wrong = other.trusted_by(AuditVerifier::new()).unwrap();
        assert_eq!(
            verify_chain("user#jdoe", &events, &wrong, None),
            Err(ChainError::BadSignature { seq: 0 })
        );
        let mut edited = events.clone();
        edited[1].signature = events[0].signature.clone();
        assert_eq!(
            verify_chain("user#jdoe", &edited, &trusting, None),
            Err(ChainError::BadSignature { seq: 1 })
        );
        assert!(
            AuditVerifier::new()
                .trust_p256_der("k", b"not a key")
                .is_err()
        );
    }

    #[test]
    fn unknown_keys_and_bad_material_are_errors() {
        let events = chain_of(1);
        assert!(matches!(
            verify_chain("request#r1", &events, &AuditVerifier::new(), None),
            Err(ChainError::UnknownKey { .. })
        ));
        assert_eq!(
            AuditSigner::from_seed_hex("k", "zz").unwrap_err(),
            KeyError::BadSeed
        );
        assert!(AuditVerifier::new().trust("k", "00").is_err());
        let (generated, seed) = AuditSigner::generate("k2").unwrap();
        assert_eq!(seed.len(), 64);
        assert!(
            !format!("{generated:?}").contains(&seed),
            "Debug must not print the key"
        );
    }

    proptest! {
        /// Any single-field tamper, deletion or swap anywhere in a chain is detected.
        #[test]
        fn any_tamper_is_detected(len in 2usize..8, target in 0usize..8, kind in 0u8..4) {
            let mut events = chain_of(len);
            let target = target % len;
            match kind {
                0 => events[target].actor.push('x'),
                1 => events[target].at += chrono::TimeDelta::seconds(1),
                2 => { events.remove(target); }
                _ => {
                    let other = (target + 1) % len;
                    events.swap(target, other);
                }
            }
            let verdict = verify_chain("request#r1", &events, &verifier(), Some(&chain_of(len)[len - 1].head()));
            prop_assert!(verdict.is_err());
        }
    }
}

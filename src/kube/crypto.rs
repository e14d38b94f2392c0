//! The rustls crypto provider for the one connection peerconf makes: only what a TLS 1.3
//! client needs to verify a Kubernetes API server, each piece from Graviola. Built from parts
//! rather than `rustls_graviola::default_provider()` because that one also links TLS 1.2
//! suites, ChaCha20, P-384, Ed25519, ML-KEM and private-key signing; the difference is
//! measured in docs/dependencies.md.
//!
//! - Cipher suites: TLS 1.3 AES-128-GCM (mandatory for every TLS 1.3 server) and AES-256-GCM.
//! - Key exchange: X25519 and P-256 (Go's server, hence the API server, offers both; a
//!   FIPS-only one offers P-256).
//! - Signatures: RSA PKCS#1 v1.5 and PSS with SHA-256/384/512 (kubeadm's CA and serving
//!   certificates are RSA), ECDSA P-256 with SHA-256/384 (k3s and others use P-256 keys).

use std::sync::Arc;

use graviola::hashing::{Sha256, Sha384};
use graviola::signing::ecdsa::{P256, VerifyingKey as EcdsaKey};
use graviola::signing::rsa::VerifyingKey as RsaKey;
use rustls::SignatureScheme;
use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{
    AlgorithmIdentifier, InvalidSignature, PrivateKeyDer, SignatureVerificationAlgorithm, alg_id,
};

/// The provider: see the module comment for what it holds.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![
            rustls_graviola::suites::TLS13_AES_128_GCM_SHA256,
            rustls_graviola::suites::TLS13_AES_256_GCM_SHA384,
        ],
        kx_groups: vec![&rustls_graviola::kx::X25519, &rustls_graviola::kx::P256],
        signature_verification_algorithms: ALGORITHMS,
        secure_random: &Random,
        key_provider: &NoPrivateKeys,
    }
}

#[derive(Debug)]
struct Random;

impl SecureRandom for Random {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        graviola::random::fill(buf).map_err(|_| GetRandomFailed)
    }
}

/// peerconf authenticates with a bearer token, never a client certificate.
#[derive(Debug)]
struct NoPrivateKeys;

impl KeyProvider for NoPrivateKeys {
    fn load_private_key(
        &self,
        _key: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "peerconf loads no private keys".into(),
        ))
    }
}

/// An RSA signature scheme.
#[derive(Debug, Clone, Copy)]
enum Rsa {
    Pkcs1Sha256,
    Pkcs1Sha384,
    Pkcs1Sha512,
    PssSha256,
    PssSha384,
    PssSha512,
}

impl SignatureVerificationAlgorithm for Rsa {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        // webpki hands over the subjectPublicKey: a PKCS#1 RSAPublicKey.
        let key = RsaKey::from_pkcs1_der(public_key).map_err(|_| InvalidSignature)?;
        let verified = match self {
            Rsa::Pkcs1Sha256 => key.verify_pkcs1_sha256(signature, message),
            Rsa::Pkcs1Sha384 => key.verify_pkcs1_sha384(signature, message),
            Rsa::Pkcs1Sha512 => key.verify_pkcs1_sha512(signature, message),
            Rsa::PssSha256 => key.verify_pss_sha256(signature, message),
            Rsa::PssSha384 => key.verify_pss_sha384(signature, message),
            Rsa::PssSha512 => key.verify_pss_sha512(signature, message),
        };
        verified.map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        match self {
            Rsa::Pkcs1Sha256 => alg_id::RSA_PKCS1_SHA256,
            Rsa::Pkcs1Sha384 => alg_id::RSA_PKCS1_SHA384,
            Rsa::Pkcs1Sha512 => alg_id::RSA_PKCS1_SHA512,
            Rsa::PssSha256 => alg_id::RSA_PSS_SHA256,
            Rsa::PssSha384 => alg_id::RSA_PSS_SHA384,
            Rsa::PssSha512 => alg_id::RSA_PSS_SHA512,
        }
    }
}

/// ECDSA on P-256, with the hash of the signature algorithm.
#[derive(Debug, Clone, Copy)]
enum EcdsaP256 {
    Sha256,
    Sha384,
}

impl SignatureVerificationAlgorithm for EcdsaP256 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        // The subjectPublicKey of an EC key: the uncompressed point.
        let key =
            EcdsaKey::<P256>::from_x962_uncompressed(public_key).map_err(|_| InvalidSignature)?;
        let verified = match self {
            EcdsaP256::Sha256 => key.verify_asn1::<Sha256>(&[message], signature),
            EcdsaP256::Sha384 => key.verify_asn1::<Sha384>(&[message], signature),
        };
        verified.map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        match self {
            EcdsaP256::Sha256 => alg_id::ECDSA_SHA256,
            EcdsaP256::Sha384 => alg_id::ECDSA_SHA384,
        }
    }
}

static ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        &EcdsaP256::Sha256,
        &EcdsaP256::Sha384,
        &Rsa::PssSha256,
        &Rsa::PssSha384,
        &Rsa::PssSha512,
        &Rsa::Pkcs1Sha256,
        &Rsa::Pkcs1Sha384,
        &Rsa::Pkcs1Sha512,
    ],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[&EcdsaP256::Sha256],
        ),
        (SignatureScheme::RSA_PSS_SHA256, &[&Rsa::PssSha256]),
        (SignatureScheme::RSA_PSS_SHA384, &[&Rsa::PssSha384]),
        (SignatureScheme::RSA_PSS_SHA512, &[&Rsa::PssSha512]),
        (SignatureScheme::RSA_PKCS1_SHA256, &[&Rsa::Pkcs1Sha256]),
        (SignatureScheme::RSA_PKCS1_SHA384, &[&Rsa::Pkcs1Sha384]),
        (SignatureScheme::RSA_PKCS1_SHA512, &[&Rsa::Pkcs1Sha512]),
    ],
};

//! TLS for the API server: a serving certificate, and client certificates that are accepted at
//! the handshake and checked afterwards, so a bad one gets a 401 Status instead of a TLS alert.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::{
    self, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
    pki_types::{CertificateDer, PrivateKeyDer, UnixTime, pem::PemObject},
    server::{
        WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: String },
    #[error("could not build the TLS configuration: {0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Asks for a client certificate but lets the handshake finish without one or with one from
/// another CA; the chain is checked by [`ClientAuth::verify`] once the request is known.
#[derive(Debug)]
struct LenientVerifier(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for LenientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    // The handshake signatures are still checked: a client must hold the key of what it shows.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The real chain check against `--client-ca-file`, run after the handshake.
#[derive(Clone)]
pub struct ClientAuth(Arc<dyn ClientCertVerifier>);

impl ClientAuth {
    /// Whether the peer's chain leads to the client CA.
    pub fn verify(&self, chain: &[CertificateDer<'static>]) -> bool {
        let Some((end, intermediates)) = chain.split_first() else {
            return false;
        };
        self.0
            .verify_client_cert(end, intermediates, UnixTime::now())
            .is_ok()
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(|c| c.ok())
        .collect();
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

/// The server's TLS configuration (HTTP/1.1 only, so upgrades for exec keep working) and the
/// post-handshake client check.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<(Arc<rustls::ServerConfig>, ClientAuth)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in certs(client_ca)? {
        roots.add(c).map_err(|e| Error::Config(e.to_string()))?;
    }
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::Config(e.to_string()))?;
    let key_pem = read(key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| Error::Read {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(e.to_string()))?
        .with_client_cert_verifier(Arc::new(LenientVerifier(inner.clone())))
        .with_single_cert(certs(cert)?, key)
        .map_err(|e| Error::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), ClientAuth(inner)))
}

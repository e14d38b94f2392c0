//! TLS to the API server: rustls with Graviola's crypto (pure Rust and Rust inline assembly, so
//! rust-lld still links the static amd64 and arm64 binaries with no C toolchain), the pod's CA
//! bundle as the only trust anchors, TLS 1.3 only (every supported Kubernetes API server speaks
//! it), and a socket whose every read and write is bounded by one deadline.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Graviola's CPU requirement, checked before any crypto runs (Graviola itself would panic).
/// x86_64: AES-NI, PCLMULQDQ, BMI1, ADX, AVX and AVX2 (Broadwell, Zen and later); aarch64: AES,
/// PMULL, SHA2 and NEON (e.g. Graviton, Ampere, Raspberry Pi 5).
pub fn cpu_supported() -> bool {
    graviola::util::is_cpu_supported()
}

/// Why the CA bundle cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaError {
    Unreadable(String),
    NoCertificate,
    Invalid(String),
}

/// The trust anchors from a PEM bundle (the pod's `ca.crt`).
pub fn roots(ca_file: &Path) -> Result<RootCertStore, CaError> {
    let pem =
        std::fs::read(ca_file).map_err(|e| CaError::Unreadable(crate::reason::io_reason(&e)))?;
    let mut roots = RootCertStore::empty();
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| CaError::Invalid(format!("not PEM: {e}")))?;
        found += 1;
        roots
            .add(cert)
            .map_err(|e| CaError::Invalid(format!("certificate {found} is unusable: {e}")))?;
    }
    match found {
        0 => Err(CaError::NoCertificate),
        _ => Ok(roots),
    }
}

/// The client configuration: peerconf's Graviola provider, TLS 1.3, `roots` only, no client certificate.
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(super::crypto::provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TCP stream whose reads and writes each wait at most until `deadline`.
pub struct DeadlineStream {
    tcp: TcpStream,
    deadline: Instant,
}

impl DeadlineStream {
    /// Connects, waiting at most until `deadline`.
    pub fn connect(addr: SocketAddr, deadline: Instant) -> io::Result<DeadlineStream> {
        let tcp = TcpStream::connect_timeout(&addr, left(deadline)?)?;
        tcp.set_nodelay(true)?;
        Ok(DeadlineStream { tcp, deadline })
    }
}

/// The time to `deadline`, or a `TimedOut` error once it has passed.
fn left(deadline: Instant) -> io::Result<std::time::Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    match left.is_zero() {
        true => Err(io::Error::new(io::ErrorKind::TimedOut, "--timeout reached")),
        false => Ok(left),
    }
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.tcp.set_read_timeout(Some(left(self.deadline)?))?;
        self.tcp.read(buf)
    }
}

impl Write for DeadlineStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.set_write_timeout(Some(left(self.deadline)?))?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// A TLS session to `ip` over `tcp`, handshake done. The server's certificate must name `ip`
/// (the API server's certificate lists the `kubernetes` Service's cluster IP).
pub fn handshake(
    config: Arc<ClientConfig>,
    ip: IpAddr,
    mut tcp: DeadlineStream,
) -> Result<StreamOwned<ClientConnection, DeadlineStream>, io::Error> {
    let mut conn = ClientConnection::new(config, ServerName::IpAddress(ip.into()))
        .map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// The rustls error inside an I/O error, if that is what it is.
pub fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

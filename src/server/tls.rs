//! TLS of the metrics endpoint: a certificate from mounted files (`tls.crt`, `tls.key`, as in a
//! `kubernetes.io/tls` Secret), re-read when they change, or a self-signed one generated at start
//! (what controller-runtime does when no certificate directory is given); and a listener that
//! completes handshakes off the accept loop, so one slow client cannot hold the others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The certificate file in the certificate directory.
pub const CERT_FILE: &str = "tls.crt";
/// The key file in the certificate directory.
pub const KEY_FILE: &str = "tls.key";

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a certificate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable PEM certificate or key.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key does not fit the certificate, or rustls refuses it.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// The self-signed certificate cannot be generated.
    #[error("generating the self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its key, as rustls serves them.
fn certified_key(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Result<CertifiedKey, TlsError> {
    let certified = CertifiedKey::from_der(chain, key, &provider())?;
    Ok(certified)
}

/// A self-signed certificate for `localhost` and `127.0.0.1`, valid from yesterday for a year
/// (clients of a generated certificate skip verification; see the README's Security section).
pub fn self_signed() -> Result<CertifiedKey, TlsError> {
    use chrono::Datelike;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "support-operator");
    let day = |d: chrono::NaiveDate| rcgen::date_time_ymd(d.year(), d.month() as u8, d.day() as u8);
    let today = chrono::Utc::now().date_naive();
    params.not_before = day(today - chrono::Days::new(1));
    params.not_after = day(today + chrono::Days::new(365));
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let der = PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| TlsError::Pem { path: PathBuf::from("(generated)"), reason: e.to_string() })?;
    certified_key(vec![cert.der().clone()], der)
}

/// The contents of the certificate and key files, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemFiles {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl PemFiles {
    /// Reads `tls.crt` and `tls.key` in `dir`.
    pub fn read(dir: &Path) -> Result<PemFiles, TlsError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| TlsError::Read { path, source })
        };
        Ok(PemFiles { cert: read(CERT_FILE)?, key: read(KEY_FILE)? })
    }

    /// The chain and key they hold; `dir` names the files in errors.
    pub fn parse(&self, dir: &Path) -> Result<CertifiedKey, TlsError> {
        let pem_error = |name: &str, reason: String| TlsError::Pem { path: dir.join(name), reason };
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(CERT_FILE, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem_error(CERT_FILE, "no CERTIFICATE block".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| pem_error(KEY_FILE, e.to_string()))?;
        certified_key(chain, key)
    }
}

/// The certificate served now; replaced when the files change.
#[derive(Debug)]
pub struct Certificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificate {
    /// Serves `key`.
    pub fn new(key: CertifiedKey) -> Arc<Certificate> {
        Arc::new(Certificate { current: RwLock::new(Arc::new(key)) })
    }

    fn set(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
    }

    /// The TLS configuration serving this certificate (TLS 1.2 and 1.3, HTTP/1.1).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Re-reads the files in `dir` every `interval` and serves their new content once it parses;
    /// a change that does not parse (a half-written rotation) keeps the previous certificate and
    /// is logged once. `loaded` is what the current certificate was read from. Runs forever.
    pub async fn follow(self: Arc<Self>, dir: PathBuf, mut loaded: PemFiles, interval: Duration) {
        let mut failed: Option<PemFiles> = None;
        loop {
            tokio::time::sleep(interval).await;
            let files = match PemFiles::read(&dir) {
                Ok(files) => files,
                Err(e) => {
                    tracing::debug!(error = %e, "metrics certificate not readable; keeping the current one");
                    continue;
                }
            };
            if files == loaded || failed.as_ref() == Some(&files) {
                continue;
            }
            match files.parse(&dir) {
                Ok(key) => {
                    self.set(key);
                    tracing::info!(dir = %dir.display(), "metrics certificate reloaded");
                    loaded = files;
                    failed = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the changed metrics certificate is unusable; keeping the current one");
                    failed = Some(files);
                }
            }
        }
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// Accepts TLS connections: TCP accepts in one task, each handshake in a task of its own (bounded
/// in time), completed streams handed to the server in order of completion.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accept: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Serves TLS with `config` on `listener`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let accept = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local, accept })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task is gone only when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> Vec<u8> {
        let pair = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        std::fs::write(dir.join(CERT_FILE), pair.cert.pem()).unwrap();
        std::fs::write(dir.join(KEY_FILE), pair.signing_key.serialize_pem()).unwrap();
        pair.cert.der().to_vec()
    }

    fn served(cert: &Certificate) -> Vec<u8> {
        cert.current.read().unwrap().cert[0].to_vec()
    }

    #[test]
    fn the_generated_certificate_is_usable() {
        let key = self_signed().unwrap();
        assert_eq!(key.cert.len(), 1);
        Certificate::new(key).server_config().unwrap();
    }

    #[test]
    fn bad_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = PemFiles::read(dir.path()).unwrap_err().to_string();
        assert!(missing.contains("tls.crt"), "{missing}");
        write_pair(dir.path(), "a");
        std::fs::write(dir.path().join(KEY_FILE), "not a key").unwrap();
        let bad = PemFiles::read(dir.path()).unwrap().parse(dir.path()).unwrap_err().to_string();
        assert!(bad.contains("tls.key"), "{bad}");
        std::fs::write(dir.path().join(CERT_FILE), "").unwrap();
        let empty = PemFiles::read(dir.path()).unwrap().parse(dir.path()).unwrap_err().to_string();
        assert!(empty.contains("tls.crt: no CERTIFICATE"), "{empty}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_changed_pair_is_served_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_pair(dir.path(), "first");
        let files = PemFiles::read(dir.path()).unwrap();
        let cert = Certificate::new(files.parse(dir.path()).unwrap());
        let task = tokio::spawn(cert.clone().follow(dir.path().to_path_buf(), files, Duration::from_secs(10)));
        let tick = || async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                tokio::task::yield_now().await;
            }
        };
        tick().await;
        assert_eq!(served(&cert), first, "unchanged files: the same certificate");
        let second = write_pair(dir.path(), "second");
        tick().await;
        assert_eq!(served(&cert), second, "rotated");
        std::fs::write(dir.path().join(KEY_FILE), "half written").unwrap();
        tick().await;
        assert_eq!(served(&cert), second, "a broken rotation keeps the last good certificate");
        task.abort();
    }
}

//! TLS, once for every part of squall: the client configuration that the
//! load engine, the chaos agent and the watchdog share ([`TlsClient`]), the
//! reference relay's server configuration ([`server_config`]), the one stream
//! type that is either plain TCP or TLS over it ([`Stream`]), and the error
//! kinds a TLS failure is counted under ([`TlsFailure`]).
//!
//! rustls with the *ring* provider. Trust comes from Mozilla's root store
//! compiled in (webpki-roots: the same on every machine and in a container
//! without a CA bundle), or, with [`TlsSettings::ca_file`], from that PEM
//! bundle alone (a private CA, or a self-signed certificate), as `curl
//! --cacert` does. [`TlsSettings::insecure`] accepts any certificate (the
//! handshake's signatures are still checked): for a self-signed staging
//! server, and every caller says so loudly.
//!
//! Every client socket is a new client: session resumption is off, so each
//! TLS handshake is a full one, as the first visit of each of so many users
//! would be (and as a reconnect storm of distinct clients costs a server).
//! ALPN offers `http/1.1`, which a WebSocket upgrade and a health GET speak.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub use rustls::ServerConfig;

/// The ALPN protocol offered and served: HTTP/1.1, which carries the
/// WebSocket upgrade and the health and metrics GETs.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// How squall trusts the servers it speaks TLS to: plain data, so that a
/// plan can cross to a worker process as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// A PEM bundle of the certificates to trust instead of Mozilla's roots:
    /// a private CA, or the server's own self-signed certificate.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate, unverified (a self-signed staging server).
    /// The handshake is still encrypted and its signatures checked, but
    /// anyone in the path could pose as the server.
    pub insecure: bool,
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A PEM file that does not parse.
    #[error("{}: not valid PEM: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A PEM file without the certificate (or key) it should hold.
    #[error("{}: no {what} in it (expected a PEM file)", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// `"certificate"` or `"private key"`.
        what: &'static str,
    },
    /// A certificate that cannot be a trust anchor.
    #[error("{}: certificate not usable as a trusted root: {source}", path.display())]
    Anchor {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
    /// rustls refused the configuration (a key that does not match its
    /// certificate, an unsupported key type).
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
}

/// How a TLS failure is counted (`connections.errors`, chaos failures): by
/// what failed, never by searching a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsFailure {
    /// The server's certificate was not accepted (unknown issuer, expired,
    /// not valid for the name, ...): `tls_cert`.
    Certificate,
    /// Any other TLS failure: an alert from the server, a peer that does not
    /// speak TLS, a protocol violation: `tls`.
    Handshake,
}

impl TlsFailure {
    /// The error kind's key: `tls_cert` or `tls`.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsFailure::Certificate => "tls_cert",
            TlsFailure::Handshake => "tls",
        }
    }

    /// The TLS failure an I/O error from a TLS stream carries, if it is one
    /// (tokio-rustls wraps rustls errors as `InvalidData`). A reset or an
    /// end of stream during the handshake is not a TLS failure: it keeps
    /// its I/O kind.
    pub fn of(e: &io::Error) -> Option<TlsFailure> {
        let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
        Some(match inner {
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                TlsFailure::Certificate
            }
            _ => TlsFailure::Handshake,
        })
    }
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client side: one rustls configuration, built once and shared by
/// every socket (cloning is cheap).
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    insecure: bool,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl Default for TlsClient {
    /// Mozilla's roots, verified: what [`TlsSettings::default`] gives, and
    /// it cannot fail.
    fn default() -> Self {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Self::verified(roots).expect("the default protocol versions of ring are valid")
    }
}

impl TlsClient {
    /// Builds the client configuration `settings` describe: reads and parses
    /// the CA file now, so that a bad one is refused before any socket opens.
    pub fn new(settings: &TlsSettings) -> Result<TlsClient, TlsError> {
        if settings.insecure {
            let provider = provider();
            let mut config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth();
            finish(&mut config);
            return Ok(TlsClient {
                config: Arc::new(config),
                insecure: true,
            });
        }
        let Some(path) = &settings.ca_file else {
            return Ok(TlsClient::default());
        };
        let mut roots = RootCertStore::empty();
        for cert in certificates(path)? {
            roots.add(cert).map_err(|source| TlsError::Anchor {
                path: path.clone(),
                source,
            })?;
        }
        Self::verified(roots)
    }

    fn verified(roots: RootCertStore) -> Result<TlsClient, TlsError> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        finish(&mut config);
        Ok(TlsClient {
            config: Arc::new(config),
            insecure: false,
        })
    }

    /// Whether certificates go unverified ([`TlsSettings::insecure`]).
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Runs the TLS handshake over `tcp` for `host` (a name, or an address
    /// as a URL writes it, IPv6 without brackets). The error of a refused
    /// certificate or a TLS alert carries a [`TlsFailure`] ([`TlsFailure::of`]).
    pub async fn handshake(&self, host: &str, tcp: TcpStream) -> io::Result<Stream> {
        let name = server_name(host)?;
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await?;
        Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls))))
    }

    /// The bytes of a fresh ClientHello for `host`, as a client's first
    /// flight: for a fault that stops in the middle of the handshake.
    pub fn client_hello(&self, host: &str) -> io::Result<Vec<u8>> {
        let name = server_name(host)?;
        let mut conn = rustls::ClientConnection::new(self.config.clone(), name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut hello = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut hello)?;
        }
        Ok(hello)
    }
}

/// The name a client checks the certificate against: an IP address (a
/// certificate for 127.0.0.1 names it in its IP SANs) or a DNS name.
fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is not a TLS server name: {e}"),
        )
    })
}

/// What every client configuration has: no resumption (each socket is a
/// new client: a full handshake), ALPN `http/1.1`.
fn finish(config: &mut ClientConfig) {
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file, at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Missing {
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The server side: `cert` (a PEM chain, the server's certificate first) and
/// its private `key` (PEM: PKCS#8, PKCS#1 or SEC1), ALPN `http/1.1`. What
/// `squall relay --tls-cert --tls-key` serves with.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(cert)?;
    let key_pem = read(key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Missing {
            path: key.to_path_buf(),
            what: "private key",
        },
        e => TlsError::Pem {
            path: key.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any server certificate ([`TlsSettings::insecure`]), while still
/// checking that the server holds the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TCP stream, plain or with TLS over it: what the relay serves and the
/// clients speak, one type whichever the URL's scheme. The TLS state is
/// boxed, so a plain stream costs what a `TcpStream` does.
#[derive(Debug)]
pub enum Stream {
    /// `ws://`, `http://`.
    Plain(TcpStream),
    /// `wss://`, `https://` (client or server side).
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath (for socket options: zero linger, ...).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        }
    }

    /// Whether TLS runs over the socket.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Reads what is available now without waiting: `WouldBlock` when
    /// nothing is (over TLS, when no whole record is).
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.try_read(buf),
            Stream::Tls(_) => {
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut read = ReadBuf::new(buf);
                match Pin::new(self).poll_read(&mut cx, &mut read) {
                    Poll::Ready(Ok(())) => Ok(read.filled().len()),
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Runs the server side of a TLS handshake on an accepted socket.
pub async fn accept(config: &Arc<ServerConfig>, tcp: TcpStream) -> io::Result<Stream> {
    let tls = tokio_rustls::TlsAcceptor::from(config.clone())
        .accept(tcp)
        .await?;
    Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A self-signed certificate for 127.0.0.1 and localhost, written as
    /// PEM files into a fresh directory.
    fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
        let cert = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert.cert.pem()).unwrap();
        std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
        (c, k)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("squall-proto-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A TLS echo of one line, on loopback; returns its port.
    async fn echo_server(config: Arc<ServerConfig>) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let config = config.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = accept(&config, tcp).await else {
                        return;
                    };
                    let mut buf = [0u8; 64];
                    if let Ok(n) = tls.read(&mut buf).await {
                        let _ = tls.write_all(&buf[..n]).await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn trusts_the_ca_file_and_refuses_a_stranger_as_tls_cert() {
        let dir = temp_dir("trust");
        let (cert, key) = self_signed(&dir);
        let port = echo_server(server_config(&cert, &key).unwrap()).await;
        let dial = || TcpStream::connect(("127.0.0.1", port));

        let trusting = TlsClient::new(&TlsSettings {
            ca_file: Some(cert.clone()),
            insecure: false,
        })
        .unwrap();
        let mut tls = trusting
            .handshake("127.0.0.1", dial().await.unwrap())
            .await
            .unwrap();
        assert!(tls.is_tls());
        tls.write_all(b"hello").await.unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");

        // Mozilla's roots do not know this certificate.
        let e = TlsClient::default()
            .handshake("127.0.0.1", dial().await.unwrap())
            .await
            .unwrap_err();
        assert_eq!(TlsFailure::of(&e), Some(TlsFailure::Certificate), "{e}");
        assert_eq!(TlsFailure::Certificate.to_string(), "tls_cert");

        // Insecure accepts it.
        let insecure = TlsClient::new(&TlsSettings {
            ca_file: None,
            insecure: true,
        })
        .unwrap();
        assert!(insecure.is_insecure());
        insecure
            .handshake("localhost", dial().await.unwrap())
            .await
            .unwrap();

        // A peer that does not speak TLS is a `tls` failure.
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_port = plain.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = plain.accept().await.unwrap();
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let tcp = TcpStream::connect(("127.0.0.1", plain_port)).await.unwrap();
        let e = trusting.handshake("127.0.0.1", tcp).await.unwrap_err();
        assert_eq!(TlsFailure::of(&e), Some(TlsFailure::Handshake), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_files_name_the_file() {
        let dir = temp_dir("bad");
        let missing = dir.join("nope.pem");
        let e = TlsClient::new(&TlsSettings {
            ca_file: Some(missing.clone()),
            insecure: false,
        })
        .unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
        assert!(e.to_string().contains("nope.pem"), "{e}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let e = server_config(&empty, &empty).unwrap_err();
        assert!(
            matches!(
                e,
                TlsError::Missing {
                    what: "certificate",
                    ..
                }
            ),
            "{e}"
        );
        let (cert, _) = self_signed(&dir);
        let e = server_config(&cert, &cert).unwrap_err();
        assert!(
            matches!(
                e,
                TlsError::Missing {
                    what: "private key",
                    ..
                }
            ),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_client_hello_is_a_tls_handshake_record() {
        let hello = TlsClient::default().client_hello("127.0.0.1").unwrap();
        // Content type 22 (handshake), then message type 1 (ClientHello).
        assert_eq!(hello[0], 22);
        assert_eq!(hello[5], 1);
        assert!(TlsClient::default().client_hello("bad host!").is_err());
    }
}

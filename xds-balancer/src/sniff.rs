//! Naming what answers at an address when it is not the gRPC server that
//! was expected.
//!
//! When a connection or a stream to the control plane fails, the transport's
//! error ("connection closed", "broken pipe") rarely says why. [`sniff`]
//! opens one more TCP connection, sends the HTTP/2 client preface and reads
//! the first bytes of the answer, which tell apart the usual mistakes: an
//! HTTP/1.1-only server, a server that refuses cleartext HTTP/2 with GOAWAY
//! HTTP_1_1_REQUIRED (ASP.NET Core's Kestrel on an `Http1AndHttp2` endpoint
//! without TLS), and a TLS-only port.
//!
//! A TLS server's alert to the cleartext preface can lose the race with its
//! reset, so a connection closed without a byte gets a second look: a TLS
//! ClientHello, which a TLS server answers with its certificate.
//!
//! The client uses it for the control plane's address; `greeter-client
//! diagnose` uses it for every endpoint of a service.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use crate::frames::{CLIENT_PREFACE, FrameEvent, FrameReader, HTTP_1_1_REQUIRED};

/// What a server answered to the HTTP/2 client preface.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefaceAnswer {
    /// HTTP/2 frames (SETTINGS first): a cleartext HTTP/2 server.
    Http2,
    /// GOAWAY with HTTP_1_1_REQUIRED: HTTP/2 refused on this port.
    Http11Required,
    /// An HTTP/1.x response.
    Http1,
    /// A TLS record (an alert or a handshake message).
    Tls,
    /// The connection closed without a byte.
    Closed,
    /// Nothing within the time limit.
    Silent,
    /// Something else, its first bytes.
    Other(Vec<u8>),
    /// No TCP connection (the error).
    Unreachable(String),
}

impl PrefaceAnswer {
    /// Why a gRPC client cannot talk to this server, for messages; `None`
    /// for a cleartext HTTP/2 server (the cause lies elsewhere).
    pub fn problem(&self) -> Option<String> {
        let text = match self {
            PrefaceAnswer::Http2 => return None,
            PrefaceAnswer::Http11Required => {
                "it refused cleartext HTTP/2 with GOAWAY HTTP_1_1_REQUIRED: \
                 it serves only HTTP/1.1 without TLS on this port (ASP.NET Core's Kestrel does \
                 this for an endpoint with Protocols = Http1AndHttp2 and no TLS: set Http2 for \
                 the gRPC endpoint)"
                    .to_owned()
            }
            PrefaceAnswer::Http1 => "not an HTTP/2 server: it answered the HTTP/2 preface with an \
                 HTTP/1.x response (gRPC needs HTTP/2; is this the right port?)"
                .to_owned(),
            PrefaceAnswer::Tls => {
                "the port speaks TLS: it answered the cleartext HTTP/2 preface with \
                 a TLS record; use https:// with TLS settings, or the plaintext port"
                    .to_owned()
            }
            PrefaceAnswer::Closed => {
                "the server closed the connection without answering the HTTP/2 preface (a \
                 TLS-only port or a non-gRPC service does this)"
                    .to_owned()
            }
            PrefaceAnswer::Silent => "the server did not answer the HTTP/2 preface".to_owned(),
            PrefaceAnswer::Other(bytes) => format!(
                "not an HTTP/2 server: it answered the HTTP/2 preface with {:?}",
                String::from_utf8_lossy(bytes)
            ),
            PrefaceAnswer::Unreachable(error) => error.clone(),
        };
        Some(text)
    }

    /// Classifies the first bytes of an answer (all there is once the
    /// server closed or went quiet).
    fn classify(bytes: &[u8]) -> Option<PrefaceAnswer> {
        if bytes.starts_with(b"HTTP/") {
            return Some(PrefaceAnswer::Http1);
        }
        // An error page without a status line: what an HTTP/1.x server
        // that reads the preface as an HTTP/0.9 request sends (Python's
        // http.server does).
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(14)]).to_ascii_lowercase();
        for page in ["<!doctype html", "<html"] {
            if head.starts_with(page) {
                return Some(PrefaceAnswer::Http1);
            }
            if page.starts_with(&head) {
                return None;
            }
        }
        if let [0x15 | 0x16, 0x03, ..] = bytes {
            return Some(PrefaceAnswer::Tls);
        }
        let mut settings = false;
        let mut refused = false;
        FrameReader::default().feed(bytes, |event| match event {
            FrameEvent::Settings { .. } => settings = true,
            FrameEvent::GoAway { error_code, .. } => refused |= error_code == HTTP_1_1_REQUIRED,
        });
        if refused {
            Some(PrefaceAnswer::Http11Required)
        } else if settings {
            // A GOAWAY may follow the SETTINGS: keep reading.
            None
        } else if bytes.len() >= 9 {
            Some(PrefaceAnswer::Other(
                bytes.iter().copied().take(32).collect(),
            ))
        } else {
            None
        }
    }
}

/// Connects to `authority` (`host:port`), sends the HTTP/2 client preface
/// and classifies the answer, all within `limit` (twice `limit` at most
/// when the server closed without a byte and a TLS handshake is tried).
pub async fn sniff(authority: &str, limit: Duration) -> PrefaceAnswer {
    match preface(authority, limit).await {
        PrefaceAnswer::Closed if tls_reload::client::speaks_tls(authority, limit).await => {
            PrefaceAnswer::Tls
        }
        answer => answer,
    }
}

/// [`sniff`] without the second look.
async fn preface(authority: &str, limit: Duration) -> PrefaceAnswer {
    let deadline = Instant::now() + limit;
    let mut stream = match timeout_at(deadline, TcpStream::connect(authority)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => return PrefaceAnswer::Unreachable(format!("cannot connect: {error}")),
        Err(_) => return PrefaceAnswer::Unreachable(format!("no connection within {limit:?}")),
    };
    if stream.write_all(CLIENT_PREFACE).await.is_err() {
        return PrefaceAnswer::Closed;
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                bytes.extend_from_slice(&buf[..n]);
                if let Some(answer) = PrefaceAnswer::classify(&bytes) {
                    return answer;
                }
                if bytes.len() > 4096 {
                    break;
                }
            }
            // Closed (or reset) after what was read, or quiet since.
            Ok(_) | Err(_) if bytes.is_empty() => {
                return if Instant::now() >= deadline {
                    PrefaceAnswer::Silent
                } else {
                    PrefaceAnswer::Closed
                };
            }
            Ok(_) | Err(_) => break,
        }
    }
    PrefaceAnswer::classify(&bytes).unwrap_or(PrefaceAnswer::Http2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, 0];
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn tells_the_usual_answers_apart() {
        assert_eq!(
            PrefaceAnswer::classify(b"HTTP/1.1 400 Bad Request\r\n"),
            Some(PrefaceAnswer::Http1)
        );
        assert_eq!(
            PrefaceAnswer::classify(&[0x15, 0x03, 0x03, 0x00, 0x02, 2, 50]),
            Some(PrefaceAnswer::Tls)
        );
        let goaway = frame(0x7, &[0, 0, 0, 0, 0, 0, 0, 0xd]);
        assert_eq!(
            PrefaceAnswer::classify(&goaway),
            Some(PrefaceAnswer::Http11Required)
        );
        let mut settings_then_goaway = frame(0x4, &[]);
        assert_eq!(
            PrefaceAnswer::classify(&settings_then_goaway),
            None,
            "keep reading"
        );
        settings_then_goaway.extend(goaway);
        assert_eq!(
            PrefaceAnswer::classify(&settings_then_goaway),
            Some(PrefaceAnswer::Http11Required)
        );
        assert_eq!(
            PrefaceAnswer::classify(b"<!DOCTYPE HTML>\n<html lang=\"en\">"),
            Some(PrefaceAnswer::Http1),
            "an error page without a status line"
        );
        assert_eq!(
            PrefaceAnswer::classify(b"<!DOCTYPE H"),
            None,
            "too short to tell"
        );
        assert_eq!(
            PrefaceAnswer::classify(b"SSH-2.0-"),
            None,
            "too short to tell"
        );
        assert!(matches!(
            PrefaceAnswer::classify(b"SSH-2.0-OpenSSH_9.2\r\n"),
            Some(PrefaceAnswer::Other(_))
        ));
    }

    #[tokio::test]
    async fn reads_a_real_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut preface = vec![0u8; CLIENT_PREFACE.len()];
            socket.read_exact(&mut preface).await.expect("preface");
            socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                .await
                .expect("answer");
        });
        let answer = sniff(&addr.to_string(), Duration::from_secs(5)).await;
        assert_eq!(answer, PrefaceAnswer::Http1);
        assert!(
            answer
                .problem()
                .expect("a problem")
                .starts_with("not an HTTP/2 server")
        );
    }
}

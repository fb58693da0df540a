//! A small local HTTP server for the book (GET only, on 127.0.0.1 unless told otherwise).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::{Lang, Page, page, start_page};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not listen on {addr}: {source} (is the port taken? try --port 0)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("could not accept a connection: {0}")]
    Accept(std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A bound server; `addr` is the real address (useful with port 0).
pub struct Server {
    listener: TcpListener,
    pub addr: SocketAddr,
    lang: Lang,
}

impl Server {
    pub async fn bind(addr: SocketAddr, lang: Lang) -> Result<Server> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(Server {
            listener,
            addr,
            lang,
        })
    }

    /// The URL of the page a reader in this server's language starts on.
    pub fn url(&self) -> String {
        format!("http://{}/{}", self.addr, start_page(self.lang))
    }

    /// Serves until the process ends.
    pub async fn run(self) -> Result<()> {
        let lang = self.lang;
        loop {
            let (stream, _) = self.listener.accept().await.map_err(Error::Accept)?;
            tokio::spawn(async move {
                let service =
                    service_fn(move |req| async move { Ok::<_, Infallible>(respond(&req, lang)) });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

fn respond(req: &Request<Incoming>, lang: Lang) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
    }
    let path = req.uri().path();
    if path == "/" || path.ends_with('/') {
        let target = if path == "/" {
            format!("/{}", start_page(lang))
        } else {
            format!("{path}index.html")
        };
        return Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, target)
            .body(Full::new(Bytes::new()))
            .expect("static response");
    }
    // Paths arrive percent-encoded; the book's own file names are plain ASCII.
    match page(path) {
        Some(Page::Html(html)) => Response::builder()
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .body(Full::new(Bytes::from(html)))
            .expect("static response"),
        Some(Page::File(bytes, kind)) => Response::builder()
            .header(header::CONTENT_TYPE, kind)
            .body(Full::new(Bytes::from_static(bytes)))
            .expect("static response"),
        None => plain(StatusCode::NOT_FOUND, "no such page in the book\n"),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(text.as_bytes())))
        .expect("static response")
}

//! The DNS request handler served by hickory-server: cluster names from the index, everything
//! else forwarded to the node's resolver, with counters for the metrics page.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Message, Metadata, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::index::{Answer, Index, Qtype, Rr, fqdn};

/// The TTL of cluster records (kubeadm's Corefile sets `ttl 30`).
pub const TTL: u32 = 30;
/// How long one upstream gets to answer a forwarded query.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest UDP answer offered to EDNS clients (the DNS flag day's safe size).
const MAX_UDP_PAYLOAD: u16 = 1232;

/// Requests answered, by outcome, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub nxdomain: AtomicU64,
    pub servfail: AtomicU64,
    pub forwarded: AtomicU64,
}

/// The index shared between the watch loop (writer) and the handler (readers).
pub type SharedIndex = Arc<RwLock<Arc<Index>>>;

pub struct Handler {
    pub index: SharedIndex,
    pub upstreams: Vec<SocketAddr>,
    pub stats: Arc<Stats>,
}

fn qtype(t: RecordType) -> Qtype {
    match t {
        RecordType::A => Qtype::A,
        RecordType::AAAA => Qtype::Aaaa,
        RecordType::CNAME => Qtype::Cname,
        RecordType::SRV => Qtype::Srv,
        RecordType::PTR => Qtype::Ptr,
        RecordType::SOA => Qtype::Soa,
        RecordType::NS => Qtype::Ns,
        RecordType::ANY => Qtype::Any,
        _ => Qtype::Other,
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap_or_else(|_| Name::root())
}

/// The zone's SOA as CoreDNS's kubernetes plugin writes it; `minimum` is the negative TTL.
fn soa_record(zone: &str, serial: u32) -> Record {
    Record::from_rdata(
        name(zone),
        TTL,
        RData::SOA(SOA::new(
            name(&format!("ns.dns.{zone}")),
            name(&format!("hostmaster.{zone}")),
            serial,
            7200,
            1800,
            86400,
            TTL,
        )),
    )
}

/// A record of the index as a wire record.
pub fn record(rr: &Rr, serial: u32) -> Record {
    let r = |owner: &str, data| Record::from_rdata(name(owner), TTL, data);
    match rr {
        Rr::A(n, ip) => r(n, RData::A(A(*ip))),
        Rr::Aaaa(n, ip) => r(n, RData::AAAA(AAAA(*ip))),
        Rr::Cname(n, t) => r(n, RData::CNAME(CNAME(name(t)))),
        Rr::Ptr(n, t) => r(n, RData::PTR(PTR(name(t)))),
        Rr::Ns(n, t) => r(n, RData::NS(NS(name(t)))),
        Rr::Srv(n, s) => r(
            n,
            RData::SRV(SRV::new(s.priority, s.weight, s.port, name(&s.target))),
        ),
        Rr::Soa(zone) => soa_record(zone, serial),
    }
}

/// A response ready to send: code, sections, and whether this server is the authority.
struct Reply {
    code: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    fn code(code: ResponseCode) -> Self {
        Reply {
            code,
            authoritative: false,
            answers: vec![],
            authorities: vec![],
            additionals: vec![],
        }
    }

    fn from_upstream(m: Message) -> Self {
        Reply {
            code: m.metadata.response_code,
            authoritative: false,
            answers: m.answers,
            authorities: m.authorities,
            additionals: m.additionals,
        }
    }
}

impl Handler {
    async fn answer(&self, request: &Request) -> Reply {
        if request.metadata.op_code != OpCode::Query {
            return Reply::code(ResponseCode::NotImp);
        }
        let Ok(info) = request.request_info() else {
            return Reply::code(ResponseCode::FormErr);
        };
        let qname = fqdn(&info.query.name().to_string());
        let qt = info.query.query_type();
        let index = self.index.read().map(|i| i.clone()).unwrap_or_else(|e| {
            // A panicked writer left a whole index behind: keep serving it.
            e.into_inner().clone()
        });
        let serial = index_serial(&index);
        let negative = |code| Reply {
            code,
            authoritative: true,
            answers: vec![],
            authorities: vec![soa_record(index.zone(), serial)],
            additionals: vec![],
        };
        match index.lookup(&qname, qtype(qt)) {
            Answer::Found {
                answers,
                additionals,
            } => Reply {
                code: ResponseCode::NoError,
                authoritative: true,
                answers: answers.iter().map(|r| record(r, serial)).collect(),
                authorities: vec![],
                additionals: additionals.iter().map(|r| record(r, serial)).collect(),
            },
            Answer::NoData => negative(ResponseCode::NoError),
            Answer::NxDomain => negative(ResponseCode::NXDomain),
            Answer::External { cname, target } => {
                let mut query = Message::query();
                query.metadata.id = rand_id();
                query.metadata.recursion_desired = true;
                query.add_query(Query::query(name(&target), qt));
                let mut reply = Reply::code(ResponseCode::NoError);
                reply.authoritative = true;
                reply.answers.push(record(&cname, serial));
                if let Ok(bytes) = query.to_vec()
                    && let Some(m) = self.forward(&bytes, false).await
                {
                    reply.code = m.metadata.response_code;
                    reply.answers.extend(m.answers);
                }
                reply
            }
            Answer::Forward => {
                let tcp = request.protocol().is_stream();
                match self.forward(request.as_slice(), tcp).await {
                    Some(m) => Reply::from_upstream(m),
                    None => Reply::code(ResponseCode::ServFail),
                }
            }
        }
    }

    /// Sends the query as it came to each upstream in turn (over TCP when it came over TCP or
    /// the UDP answer was truncated); None when none answered.
    async fn forward(&self, query: &[u8], tcp: bool) -> Option<Message> {
        self.stats.forwarded.fetch_add(1, Ordering::Relaxed);
        for up in &self.upstreams {
            let answer = if tcp {
                exchange_tcp(*up, query).await
            } else {
                match exchange_udp(*up, query).await {
                    Ok(m) if m.metadata.truncation => exchange_tcp(*up, query).await,
                    other => other,
                }
            };
            match answer {
                Ok(m) => return Some(m),
                Err(e) => eprintln!("coredns: upstream {up}: {e}"),
            }
        }
        None
    }
}

/// The serial in SOA records: changes with the index, like CoreDNS's.
fn index_serial(index: &Index) -> u32 {
    // The index does not carry a clock; its size is enough for clients to see a change.
    index.len() as u32
}

fn rand_id() -> u16 {
    uuid::Uuid::new_v4().as_u64_pair().0 as u16
}

async fn exchange_udp(up: SocketAddr, query: &[u8]) -> std::io::Result<Message> {
    let bind: SocketAddr = if up.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(bind).await?;
    sock.connect(up).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + FORWARD_TIMEOUT;
    loop {
        let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))??;
        // Only the answer to this query (same ID) counts.
        if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
            return Message::from_vec(&buf[..n])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        }
    }
}

async fn exchange_tcp(up: SocketAddr, query: &[u8]) -> std::io::Result<Message> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(up).await?;
        let len = u16::try_from(query.len())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too long"))?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(query);
        s.write_all(&framed).await?;
        let n = s.read_u16().await? as usize;
        let mut buf = vec![0u8; n];
        s.read_exact(&mut buf).await?;
        Message::from_vec(&buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    };
    tokio::time::timeout(FORWARD_TIMEOUT, work)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"))?
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let reply = self.answer(request).await;
        match reply.code {
            ResponseCode::NXDomain => self.stats.nxdomain.fetch_add(1, Ordering::Relaxed),
            ResponseCode::ServFail => self.stats.servfail.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let edns = request.edns.as_ref().map(|e| {
            let mut ours = Edns::new();
            ours.set_max_payload(e.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            ours
        });
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = reply.code;
        metadata.authoritative = reply.authoritative;
        metadata.recursion_available = true;
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let response = builder.build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                eprintln!("coredns: could not send a response: {e}");
                let mut m = Metadata::response_from_request(&request.metadata);
                m.response_code = ResponseCode::ServFail;
                ResponseInfo::from(hickory_server::proto::op::Header {
                    metadata: m,
                    counts: Default::default(),
                })
            }
        }
    }
}

/// The Prometheus text CoreDNS's metrics plugin would show, for the counters kept here.
pub fn metrics_text(stats: &Stats, index: &Index) -> String {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    format!(
        "# HELP coredns_dns_requests_total Counter of DNS requests made per zone, protocol and family.\n\
         # TYPE coredns_dns_requests_total counter\n\
         coredns_dns_requests_total{{server=\"dns://:53\",zone=\".\"}} {}\n\
         # HELP coredns_dns_responses_total Counter of response status codes.\n\
         # TYPE coredns_dns_responses_total counter\n\
         coredns_dns_responses_total{{rcode=\"NXDOMAIN\"}} {}\n\
         coredns_dns_responses_total{{rcode=\"SERVFAIL\"}} {}\n\
         # HELP coredns_forward_requests_total Counter of requests made per upstream.\n\
         # TYPE coredns_forward_requests_total counter\n\
         coredns_forward_requests_total {}\n\
         # HELP kindling_dns_index_names Names in the cluster-domain index.\n\
         # TYPE kindling_dns_index_names gauge\n\
         kindling_dns_index_names {}\n",
        get(&stats.requests),
        get(&stats.nxdomain),
        get(&stats.servfail),
        get(&stats.forwarded),
        index.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::dns::index::Srv;

    #[test]
    fn index_records_become_wire_records_with_the_cluster_ttl() {
        let r = record(
            &Rr::Srv(
                "_http._tcp.web.default.svc.cluster.local.".into(),
                Srv {
                    priority: 0,
                    weight: 100,
                    port: 80,
                    target: "web.default.svc.cluster.local.".into(),
                },
            ),
            1,
        );
        assert_eq!(r.ttl, TTL);
        assert_eq!(
            r.to_string(),
            "_http._tcp.web.default.svc.cluster.local. 30 IN SRV 0 100 80 web.default.svc.cluster.local."
        );
        let soa = record(&Rr::Soa("cluster.local.".into()), 7);
        assert!(
            soa.to_string().starts_with(
                "cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 7"
            ),
            "{soa}"
        );
    }

    #[test]
    fn query_types_map_onto_the_index() {
        assert_eq!(qtype(RecordType::AAAA), Qtype::Aaaa);
        assert_eq!(qtype(RecordType::SRV), Qtype::Srv);
        assert_eq!(qtype(RecordType::MX), Qtype::Other);
    }
}

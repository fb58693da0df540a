//! Just enough SPDY/3.1 to be a client of containerd's streaming server, which speaks nothing
//! else with the ability to half-close a stream (how `kubectl exec -i` says stdin has ended).

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

const VERSION: u16 = 3;
pub const SYN_STREAM: u16 = 1;
pub const PING: u16 = 6;
pub const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// Frames larger than this are refused: containerd never sends more than 32 KiB at once.
const MAX_FRAME: usize = 1 << 20;

#[derive(Debug, PartialEq)]
pub enum Frame {
    Data { stream: u32, fin: bool, data: Bytes },
    Control { kind: u16, flags: u8, body: Bytes },
}

/// Reads one frame; `None` when the connection ended cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    match r.read_exact(&mut head).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("SPDY frame of {len} bytes is too large"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(Some(if head[0] & 0x80 != 0 {
        Frame::Control {
            kind: u16::from_be_bytes([head[2], head[3]]),
            flags,
            body: body.into(),
        }
    } else {
        Frame::Data {
            stream: u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff,
            fin: flags & FLAG_FIN != 0,
            data: body.into(),
        }
    }))
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + body.len());
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u32(((flags as u32) << 24) | body.len() as u32);
    out.put_slice(body);
    out.freeze()
}

/// A data frame; an empty one with `fin` half-closes the stream.
pub fn data(stream: u32, fin: bool, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + payload.len());
    out.put_u32(stream & 0x7fff_ffff);
    out.put_u32(((if fin { FLAG_FIN } else { 0 } as u32) << 24) | payload.len() as u32);
    out.put_slice(payload);
    out.freeze()
}

/// The answer to a PING: the same frame back.
pub fn pong(body: &[u8]) -> Bytes {
    control(PING, 0, body)
}

/// Writes header blocks. SPDY compresses them all as one zlib stream; this one is made of
/// stored (uncompressed) deflate blocks, which every zlib reader accepts and which need no
/// compressor. Without the FDICT flag the peer never asks for SPDY's preset dictionary.
#[derive(Default)]
pub struct Headers {
    started: bool,
}

impl Headers {
    fn block(&mut self, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = BytesMut::new();
        raw.put_u32(pairs.len() as u32);
        for (k, v) in pairs {
            raw.put_u32(k.len() as u32);
            raw.put_slice(k.to_ascii_lowercase().as_bytes());
            raw.put_u32(v.len() as u32);
            raw.put_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 16);
        if !self.started {
            // zlib header: deflate, 32 KiB window, no dictionary, check bits valid.
            out.extend_from_slice(&[0x78, 0x01]);
            self.started = true;
        }
        for chunk in raw.chunks(0xffff) {
            let len = chunk.len() as u16;
            out.push(0x00); // BFINAL=0, BTYPE=stored, padded to the byte boundary
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(chunk);
        }
        // A sync flush (an empty stored block) ends every block, as zlib's Z_SYNC_FLUSH does:
        // it is what makes Go's reader hand the bytes over without reading past this frame.
        out.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
        out
    }

    /// A SYN_STREAM opening `stream` with `pairs` as its headers.
    pub fn syn_stream(&mut self, stream: u32, pairs: &[(&str, &str)]) -> Bytes {
        let mut body = Vec::new();
        body.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes()); // associated stream
        body.extend_from_slice(&[0, 0]); // priority, slot
        body.extend_from_slice(&self.block(pairs));
        control(SYN_STREAM, 0, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_through_the_reader() {
        let mut h = Headers::default();
        let mut wire = Vec::new();
        wire.extend_from_slice(&h.syn_stream(1, &[("streamType", "error")]));
        wire.extend_from_slice(&data(3, true, b""));
        wire.extend_from_slice(&data(5, false, b"hi"));
        let mut r = &wire[..];
        let Some(Frame::Control { kind, body, .. }) = read_frame(&mut r).await.unwrap() else {
            panic!("a control frame first")
        };
        assert_eq!(kind, SYN_STREAM);
        assert_eq!(&body[..4], &1u32.to_be_bytes());
        // The header block starts a zlib stream with a stored block holding the raw pairs.
        assert_eq!(&body[10..13], &[0x78, 0x01, 0x00]);
        assert!(body.ends_with(b"streamtype\0\0\0\x05error\0\0\0\xff\xff"));
        assert_eq!(
            read_frame(&mut r).await.unwrap(),
            Some(Frame::Data {
                stream: 3,
                fin: true,
                data: Bytes::new()
            })
        );
        assert_eq!(
            read_frame(&mut r).await.unwrap(),
            Some(Frame::Data {
                stream: 5,
                fin: false,
                data: Bytes::from_static(b"hi")
            })
        );
        assert_eq!(read_frame(&mut r).await.unwrap(), None);
    }

    #[test]
    fn later_header_blocks_continue_the_same_zlib_stream() {
        let mut h = Headers::default();
        let first = h.block(&[("a", "b")]);
        let second = h.block(&[("a", "b")]);
        assert_eq!(&first[..2], &[0x78, 0x01]);
        assert_eq!(first.len(), second.len() + 2);
        assert_eq!(second[0], 0x00);
        let len = u16::from_le_bytes([second[1], second[2]]);
        assert_eq!(len as usize, second.len() - 10);
        assert_eq!(u16::from_le_bytes([second[3], second[4]]), !len);
        assert!(
            second.ends_with(&[0, 0, 0, 0xff, 0xff]),
            "a sync flush ends it"
        );
    }
}

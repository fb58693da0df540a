//! The protobuf wire format: a reader of field keys, varints, fixed-width and length-delimited values.

use super::{Error, Result};

/// How a field's value is laid out on the wire (the low three bits of its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

impl WireType {
    fn from_bits(bits: u64) -> Result<Self> {
        Ok(match bits {
            0 => Self::Varint,
            1 => Self::Fixed64,
            2 => Self::Len,
            5 => Self::Fixed32,
            // 3 and 4 are proto2 groups, which Kubernetes never uses.
            other => return Err(Error::UnsupportedWireType(other)),
        })
    }
}

/// A cursor over one message's bytes; every read checks bounds, so garbage gives an error.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The next field's number and wire type, or `None` at the end of the message.
    pub fn key(&mut self) -> Result<Option<(u32, WireType)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = u32::try_from(key >> 3)
            .ok()
            .filter(|n| *n != 0)
            .ok_or(Error::BadFieldNumber(key >> 3))?;
        Ok(Some((number, WireType::from_bits(key & 7)?)))
    }

    pub fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for (i, byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(if self.buf.len() < 10 {
            Error::Truncated
        } else {
            Error::VarintTooLong
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(Error::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub fn fixed64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("took 8 bytes")))
    }

    pub fn fixed32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().expect("took 4 bytes")))
    }

    /// A length-delimited value: a string, bytes, an embedded message or a packed list.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| Error::Truncated)?;
        self.take(len)
    }

    /// Step over a value of a field the schema does not know, as protobuf requires.
    pub fn skip(&mut self, wire: WireType) -> Result<()> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.take(8).map(drop),
            WireType::Len => self.bytes().map(drop),
            WireType::Fixed32 => self.take(4).map(drop),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_little_endian_groups_of_seven_bits() {
        let mut r = Reader::new(&[0x96, 0x01, 0x00]);
        assert_eq!(r.varint().unwrap(), 150);
        assert_eq!(r.varint().unwrap(), 0);
        assert!(r.is_empty());
        let mut r = Reader::new(&[0xff; 10]);
        assert!(matches!(r.varint(), Err(Error::VarintTooLong)));
        let mut r = Reader::new(&[0x80, 0x80]);
        assert!(matches!(r.varint(), Err(Error::Truncated)));
    }

    #[test]
    fn lengths_past_the_end_are_truncation_not_panics() {
        let mut r = Reader::new(&[0x0a, 0x05, b'a']);
        assert_eq!(r.key().unwrap(), Some((1, WireType::Len)));
        assert!(matches!(r.bytes(), Err(Error::Truncated)));
        let mut r = Reader::new(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        r.key().unwrap();
        assert!(matches!(r.bytes(), Err(Error::Truncated)));
    }

    #[test]
    fn groups_and_field_zero_are_refused() {
        assert!(matches!(
            Reader::new(&[0x0b]).key(),
            Err(Error::UnsupportedWireType(3))
        ));
        assert!(matches!(
            Reader::new(&[0x02]).key(),
            Err(Error::BadFieldNumber(0))
        ));
    }
}

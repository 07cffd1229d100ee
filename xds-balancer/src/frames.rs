//! Watching the HTTP/2 frames a server sends, without touching them.
//!
//! h2 does not tell its user when the server sends GOAWAY: its connection
//! future only ends once every in-flight stream is done, and the picker
//! needs to know before it hands the connection another call. To take an endpoint out of rotation the moment
//! it says goodbye, the connection's read side passes every byte through
//! [`FrameReader`], which follows frame boundaries and reports the frames
//! that matter: the server's SETTINGS (it speaks HTTP/2 and is alive) and
//! GOAWAY. The bytes themselves go to h2 unchanged.
//!
//! The server-to-client direction of an h2c connection is frames from the
//! first byte (the server's preface is a SETTINGS frame), so no other state
//! is needed.

/// Frame type of SETTINGS.
const SETTINGS: u8 = 0x4;
/// Frame type of GOAWAY.
const GOAWAY: u8 = 0x7;
/// GOAWAY error code HTTP_1_1_REQUIRED (RFC 9113).
pub(crate) const HTTP_1_1_REQUIRED: u32 = 0xd;
/// The client connection preface: the magic string and an empty SETTINGS
/// frame.
pub(crate) const CLIENT_PREFACE: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// The ACK flag on a SETTINGS frame.
const ACK: u8 = 0x1;
/// Length of a frame header.
const HEADER_LEN: usize = 9;

/// A frame worth knowing about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameEvent {
    /// A SETTINGS frame (`ack` for the server acknowledging ours).
    Settings { ack: bool },
    /// A GOAWAY frame: no streams above `last_stream_id` will be processed.
    GoAway {
        last_stream_id: u32,
        error_code: u32,
    },
}

/// Follows frame boundaries in a byte stream.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    header: [u8; HEADER_LEN],
    header_len: usize,
    /// Payload bytes left in the current frame (after its header).
    remaining: usize,
    kind: u8,
    /// The first 8 payload bytes of a GOAWAY frame.
    goaway: [u8; 8],
    goaway_len: usize,
}

impl FrameReader {
    /// Feeds the next bytes read from the server; calls `on_event` for each
    /// frame of interest as soon as enough of it has been seen.
    pub(crate) fn feed(&mut self, mut data: &[u8], mut on_event: impl FnMut(FrameEvent)) {
        while !data.is_empty() {
            if self.header_len < HEADER_LEN {
                let take = (HEADER_LEN - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
                self.header_len += take;
                data = &data[take..];
                if self.header_len < HEADER_LEN {
                    return;
                }
                let length = (usize::from(self.header[0]) << 16)
                    | (usize::from(self.header[1]) << 8)
                    | usize::from(self.header[2]);
                self.kind = self.header[3];
                self.remaining = length;
                self.goaway_len = 0;
                if self.kind == SETTINGS {
                    on_event(FrameEvent::Settings {
                        ack: self.header[4] & ACK != 0,
                    });
                }
                if self.remaining == 0 {
                    self.header_len = 0;
                }
                continue;
            }
            let take = self.remaining.min(data.len());
            if self.kind == GOAWAY && self.goaway_len < self.goaway.len() {
                let copy = (self.goaway.len() - self.goaway_len).min(take);
                self.goaway[self.goaway_len..self.goaway_len + copy].copy_from_slice(&data[..copy]);
                self.goaway_len += copy;
                if self.goaway_len == self.goaway.len() {
                    let [a, b, c, d, e, f, g, h] = self.goaway;
                    on_event(FrameEvent::GoAway {
                        last_stream_id: u32::from_be_bytes([a, b, c, d]) & 0x7fff_ffff,
                        error_code: u32::from_be_bytes([e, f, g, h]),
                    });
                }
            }
            self.remaining -= take;
            data = &data[take..];
            if self.remaining == 0 {
                self.header_len = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// What a server typically sends: SETTINGS, SETTINGS ack, HEADERS,
    /// DATA (which happens to contain GOAWAY-looking bytes), GOAWAY(2^31-1),
    /// PING, GOAWAY(5, NO_ERROR).
    fn conversation() -> Vec<u8> {
        let mut bytes = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
        bytes.extend(frame(SETTINGS, ACK, 0, &[]));
        bytes.extend(frame(0x1, 0x4, 1, &[0x88]));
        let fake = frame(GOAWAY, 0, 0, &[0, 0, 0, 9, 0, 0, 0, 2]);
        bytes.extend(frame(0x0, 0x1, 1, &fake));
        bytes.extend(frame(GOAWAY, 0, 0, &[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]));
        bytes.extend(frame(0x6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]));
        bytes.extend(frame(
            GOAWAY,
            0,
            0,
            &[0, 0, 0, 5, 0, 0, 0, 0, b'b', b'y', b'e'],
        ));
        bytes
    }

    fn expected() -> Vec<FrameEvent> {
        vec![
            FrameEvent::Settings { ack: false },
            FrameEvent::Settings { ack: true },
            FrameEvent::GoAway {
                last_stream_id: 0x7fff_ffff,
                error_code: 0,
            },
            FrameEvent::GoAway {
                last_stream_id: 5,
                error_code: 0,
            },
        ]
    }

    #[test]
    fn finds_settings_and_goaway_in_one_read() {
        let mut reader = FrameReader::default();
        let mut events = Vec::new();
        reader.feed(&conversation(), |e| events.push(e));
        assert_eq!(events, expected());
    }

    #[test]
    fn finds_them_whatever_the_read_boundaries() {
        let bytes = conversation();
        for chunk in 1..=bytes.len() {
            let mut reader = FrameReader::default();
            let mut events = Vec::new();
            for piece in bytes.chunks(chunk) {
                reader.feed(piece, |e| events.push(e));
            }
            assert_eq!(events, expected(), "chunks of {chunk} bytes");
        }
    }

    #[test]
    fn reports_goaway_once_its_ids_are_in() {
        let bytes = frame(GOAWAY, 0, 0, &[0, 0, 0, 7, 0, 0, 0, 2, 1, 2, 3]);
        let mut reader = FrameReader::default();
        let mut events = Vec::new();
        // Header and the first 7 payload bytes: not yet.
        reader.feed(&bytes[..16], |e| events.push(e));
        assert!(events.is_empty());
        reader.feed(&bytes[16..17], |e| events.push(e));
        assert_eq!(
            events,
            [FrameEvent::GoAway {
                last_stream_id: 7,
                error_code: 2
            }]
        );
    }
}

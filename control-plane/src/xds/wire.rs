//! Responses in wire form, with each resource encoded once.
//!
//! # Design notes
//!
//! A change to one service goes to every subscriber of it. Building a
//! `DiscoveryResponse` per subscriber and letting the codec encode it would
//! copy every resource twice per subscriber (the `Any` clone, then the
//! encoding) and keep an encode buffer as large as the largest response in
//! every stream. Instead each resource is encoded once, when the store
//! builds it, as the bytes of its entry in `DiscoveryResponse.resources`
//! ([`encode_resource`]); an [`EncodedResponse`] holds those shared
//! [`Bytes`] plus the few per-stream fields (version, nonce), and
//! [`EncodedResponse::frames`] lays out the gRPC message as chunks that the
//! HTTP/2 layer writes without copying the shared ones.
//!
//! The chunks are byte for byte what prost would encode for the same
//! `DiscoveryResponse` (fields in tag order), which the tests check.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use prost::encoding::{self, WireType};

/// `DiscoveryResponse` field numbers.
const VERSION_INFO: u32 = 1;
const RESOURCES: u32 = 2;
const TYPE_URL: u32 = 4;
const NONCE: u32 = 5;
const CONTROL_PLANE: u32 = 6;
/// gRPC message header: compression flag and big-endian length.
const GRPC_HEADER: usize = 5;
/// Messages up to this size are sent as one chunk (copying the shared
/// resources is cheaper than more HTTP/2 frames).
const CONTIGUOUS_MAX: usize = 4096;

/// `any` as an entry of `DiscoveryResponse.resources`: field tag, length
/// and the encoded `Any`.
pub fn encode_resource(any: &Any) -> Bytes {
    let len = any.encoded_len();
    let mut buf = BytesMut::with_capacity(len + 16);
    encoding::encode_key(RESOURCES, WireType::LengthDelimited, &mut buf);
    encoding::encode_varint(len as u64, &mut buf);
    any.encode_raw(&mut buf);
    buf.freeze()
}

/// A `DiscoveryResponse` ready to write: per-stream fields, and resources
/// shared with every other stream that gets them.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedResponse {
    /// `version_info`.
    pub version_info: String,
    /// `type_url`.
    pub type_url: &'static str,
    /// `nonce`.
    pub nonce: String,
    /// `control_plane`, shared by every response of the server.
    pub control_plane: Arc<ControlPlane>,
    /// Entries of `resources`, each from [`encode_resource`].
    pub resources: Vec<Bytes>,
}

/// Encoded length of string field `tag` (left out when empty, as proto3
/// does).
fn string_len(tag: u32, value: &str) -> usize {
    if value.is_empty() {
        0
    } else {
        encoding::key_len(tag) + encoding::encoded_len_varint(value.len() as u64) + value.len()
    }
}

fn put_string(tag: u32, value: &str, buf: &mut BytesMut) {
    if !value.is_empty() {
        encoding::encode_key(tag, WireType::LengthDelimited, buf);
        encoding::encode_varint(value.len() as u64, buf);
        buf.put_slice(value.as_bytes());
    }
}

impl EncodedResponse {
    fn head_len(&self) -> usize {
        string_len(VERSION_INFO, &self.version_info)
    }

    fn tail_len(&self) -> usize {
        string_len(TYPE_URL, self.type_url)
            + string_len(NONCE, &self.nonce)
            + encoding::message::encoded_len(CONTROL_PLANE, &*self.control_plane)
    }

    /// Length of the encoded `DiscoveryResponse`.
    pub fn encoded_len(&self) -> usize {
        self.head_len() + self.resources.iter().map(Bytes::len).sum::<usize>() + self.tail_len()
    }

    fn put_head(&self, buf: &mut BytesMut, len: usize) {
        buf.put_u8(0);
        buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
        put_string(VERSION_INFO, &self.version_info, buf);
    }

    fn put_tail(&self, buf: &mut BytesMut) {
        put_string(TYPE_URL, self.type_url, buf);
        put_string(NONCE, &self.nonce, buf);
        encoding::message::encode(CONTROL_PLANE, &*self.control_plane, buf);
    }

    /// The length-prefixed gRPC message, as chunks to write in order. Small
    /// messages come as one chunk; larger ones as a head, each shared
    /// resource as is, and a tail.
    pub fn frames(&self) -> Vec<Bytes> {
        let len = self.encoded_len();
        if len <= CONTIGUOUS_MAX {
            let mut buf = BytesMut::with_capacity(GRPC_HEADER + len);
            self.put_head(&mut buf, len);
            for resource in &self.resources {
                buf.put_slice(resource);
            }
            self.put_tail(&mut buf);
            return vec![buf.freeze()];
        }
        let mut frames = Vec::with_capacity(self.resources.len() + 2);
        let mut head = BytesMut::with_capacity(GRPC_HEADER + self.head_len());
        self.put_head(&mut head, len);
        frames.push(head.freeze());
        frames.extend(self.resources.iter().cloned());
        let mut tail = BytesMut::with_capacity(self.tail_len());
        self.put_tail(&mut tail);
        frames.push(tail.freeze());
        frames
    }

    /// The same response as a message (for tests and diagnostics; the
    /// server never needs it).
    pub fn to_message(&self) -> DiscoveryResponse {
        let mut bytes = BytesMut::new();
        for frame in self.frames() {
            bytes.put_slice(&frame);
        }
        DiscoveryResponse::decode(&bytes[GRPC_HEADER..]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(type_url: &str, size: usize) -> Any {
        Any {
            type_url: type_url.to_owned(),
            value: (0..size).map(|i| (i % 251) as u8).collect(),
        }
    }

    fn check(resources: &[Any]) {
        let control_plane = ControlPlane {
            identifier: "control-plane/0.1.0 run".to_owned(),
        };
        let expected = DiscoveryResponse {
            version_info: "run-7".to_owned(),
            resources: resources.to_vec(),
            type_url: xds_type_urls::CLUSTER_LOAD_ASSIGNMENT.to_owned(),
            nonce: "12".to_owned(),
            control_plane: Some(control_plane.clone()),
            ..Default::default()
        };
        let encoded = EncodedResponse {
            version_info: expected.version_info.clone(),
            type_url: xds_type_urls::CLUSTER_LOAD_ASSIGNMENT,
            nonce: expected.nonce.clone(),
            control_plane: Arc::new(control_plane),
            resources: resources.iter().map(encode_resource).collect(),
        };
        let body = expected.encode_to_vec();
        assert_eq!(encoded.encoded_len(), body.len());
        let frames = encoded.frames();
        let wire: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        assert_eq!(wire[0], 0, "not compressed");
        assert_eq!(
            u32::from_be_bytes([wire[1], wire[2], wire[3], wire[4]]) as usize,
            body.len()
        );
        assert_eq!(&wire[GRPC_HEADER..], body.as_slice(), "same bytes as prost");
        assert_eq!(encoded.to_message(), expected);
    }

    #[test]
    fn small_responses_are_one_chunk_identical_to_prost() {
        let resources = [
            any("type.googleapis.com/a", 10),
            any("type.googleapis.com/b", 300),
        ];
        check(&resources);
        check(&[]);
    }

    #[test]
    fn large_responses_share_the_resource_bytes() {
        let resources = [
            any("type.googleapis.com/a", 70_000),
            any("type.googleapis.com/b", 5),
        ];
        check(&resources);
        let shared = encode_resource(&resources[0]);
        let response = EncodedResponse {
            version_info: "v".to_owned(),
            type_url: "t",
            nonce: "1".to_owned(),
            control_plane: Arc::new(ControlPlane::default()),
            resources: vec![shared.clone()],
        };
        let frames = response.frames();
        assert_eq!(frames.len(), 3, "head, the resource, tail");
        assert_eq!(
            frames[1].as_ptr(),
            shared.as_ptr(),
            "the resource is written from the shared bytes, not a copy"
        );
    }
}

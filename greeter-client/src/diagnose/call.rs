//! `--call /pkg.Service/Method`: one unary call with an empty message
//! (zero bytes, which every protobuf message type reads as all defaults)
//! through the balanced channel, as an application would make it. The
//! answer's bytes are not decoded: which code came back is what tells.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use xds_balancer::Channel;

use super::cause::Cause;
use super::verdict::{Check, Outcome};

/// `/pkg.Service/Method`, from that or `pkg.Service/Method`; `None` when
/// it is not of that shape.
pub(crate) fn method_path(method: &str) -> Option<String> {
    let path = format!("/{}", method.trim().trim_start_matches('/'));
    let (service, name) = path[1..].split_once('/')?;
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
    };
    (word(service) && word(name) && !name.contains('.')).then_some(path)
}

/// Makes the call and judges its answer.
pub(crate) async fn call(channel: Channel, path: &str, timeout: Duration) -> Check {
    let mut grpc = tonic::client::Grpc::new(channel);
    let mut request = tonic::Request::new(Bytes::new());
    request.set_timeout(timeout);
    let outcome = async {
        grpc.ready()
            .await
            .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
        grpc.unary(
            request,
            PathAndQuery::try_from(path.to_owned())
                .map_err(|error| tonic::Status::invalid_argument(error.to_string()))?,
            RawCodec,
        )
        .await
    };
    let result = tokio::time::timeout(timeout + Duration::from_secs(1), outcome)
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer in time")));
    judge(path, result.map(|response| response.into_inner().len()))
}

/// What the answer says about the method.
fn judge(path: &str, result: Result<usize, tonic::Status>) -> Check {
    let status = match result {
        Ok(bytes) => {
            return Check::new(
                "call",
                path,
                Outcome::Ok,
                format!("OK ({bytes} bytes in the reply)"),
            );
        }
        Err(status) => status,
    };
    let code = common::error::code_name(status.code());
    let detail = format!("{code}: {}", status.message());
    match status.code() {
        Code::Unimplemented => Check::fail("call", path, Cause::MethodUnimplemented, detail),
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Unknown
        | Code::Internal
        | Code::Cancelled
        | Code::DataLoss => Check::fail("call", path, Cause::CallFailed, detail),
        Code::Unauthenticated | Code::PermissionDenied => Check::new(
            "call",
            path,
            Outcome::Warn,
            format!("the method exists, but this call is refused: {detail}"),
        ),
        _ => Check::new(
            "call",
            path,
            Outcome::Ok,
            format!("the method exists (an empty message got {detail})"),
        ),
    }
}

/// Sends and receives message bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths() {
        assert_eq!(
            method_path("/greet.Greeter/SayHello").as_deref(),
            Some("/greet.Greeter/SayHello")
        );
        assert_eq!(
            method_path("greet.Greeter/SayHello").as_deref(),
            Some("/greet.Greeter/SayHello")
        );
        for bad in [
            "greet.Greeter",
            "/greet.Greeter/",
            "/a/b/c",
            "/greet Greeter/X",
            "",
        ] {
            assert_eq!(method_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn codes_say_whether_the_method_exists() {
        let unimplemented = judge("/x.Y/Z", Err(tonic::Status::unimplemented("")));
        assert_eq!(unimplemented.cause, Some(Cause::MethodUnimplemented));
        let invalid = judge("/x.Y/Z", Err(tonic::Status::invalid_argument("name")));
        assert_eq!(invalid.outcome, Outcome::Ok);
        let unavailable = judge("/x.Y/Z", Err(tonic::Status::unavailable("down")));
        assert_eq!(unavailable.cause, Some(Cause::CallFailed));
        assert_eq!(judge("/x.Y/Z", Ok(3)).outcome, Outcome::Ok);
    }
}

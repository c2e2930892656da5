//! Properties of the codec and the framing on arbitrary input.

use proptest::prelude::*;
use tokend_protocol::frame::{read_frame, write_frame};
use tokend_protocol::handshake::{Hello, Welcome};
use tokend_protocol::{
    CredentialRoute, CredentialTool, ErrorCode, GetToken, HeaderLine, LoginOutcome, LoginPrompt,
    LoginRequest, LogoutOutcome, MAX_FRAME_LEN, ProtocolError, Request, Response, Secret,
    TokenGrant, codec,
};

fn any_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (".{0,64}", any::<u32>()).prop_map(|(provider, min_ttl_secs)| Request::GetToken(
            GetToken {
                provider,
                min_ttl_secs
            }
        )),
        Just(Request::Status),
        Just(Request::Ping),
        Just(Request::Shutdown),
        Just(Request::Reload),
        Just(Request::Metrics),
        Just(Request::CredentialRoutes),
        ".{0,64}".prop_map(|provider| Request::Login(LoginRequest { provider })),
        ".{0,64}".prop_map(|provider| Request::AwaitLogin(LoginRequest { provider })),
        ".{0,64}".prop_map(|provider| Request::Logout(LoginRequest { provider })),
        ".{0,64}"
            .prop_map(|provider| Request::Invalidate(tokend_protocol::Invalidate { provider })),
        (".{0,64}", any::<u32>()).prop_map(|(provider, min_ttl_secs)| Request::GetIdToken(
            GetToken {
                provider,
                min_ttl_secs
            }
        )),
        ".{0,64}".prop_map(|provider| Request::Rotate(tokend_protocol::Rotate { provider })),
    ]
}

fn any_response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (
            ".{0,32}",
            ".{0,512}",
            proptest::option::of((".{0,32}", ".{0,512}")),
            any::<Option<u64>>()
        )
            .prop_map(|(provider, token, header, expires_at_unix)| {
                Response::Token(TokenGrant {
                    provider,
                    token: Secret::new(token),
                    header: header.map(|(name, value)| HeaderLine {
                        name,
                        value: Secret::new(value),
                    }),
                    expires_at_unix,
                })
            }),
        (0..7u8, ".{0,128}").prop_map(|(code, message)| {
            let code = [
                ErrorCode::BadRequest,
                ErrorCode::UnknownProvider,
                ErrorCode::Config,
                ErrorCode::Upstream,
                ErrorCode::LoginRequired,
                ErrorCode::ShuttingDown,
                ErrorCode::Internal,
            ][usize::from(code)];
            Response::error(code, message)
        }),
        Just(Response::ShuttingDown),
        (
            ".{0,32}",
            ".{0,256}",
            proptest::option::of(".{0,16}"),
            any::<u64>()
        )
            .prop_map(|(provider, url, user_code, expires_in_secs)| {
                Response::LoginStarted(LoginPrompt {
                    provider,
                    url,
                    user_code,
                    expires_in_secs,
                })
            }),
        (".{0,32}", any::<Option<u64>>(), any::<bool>()).prop_map(
            |(provider, expires_at_unix, refreshable)| {
                Response::LoggedIn(LoginOutcome {
                    provider,
                    expires_at_unix,
                    refreshable,
                })
            }
        ),
        (any::<bool>(), ".{0,128}")
            .prop_map(|(revoked, message)| Response::LoggedOut(LogoutOutcome { revoked, message })),
        (".{0,32}", any::<u64>(), any::<Option<u64>>()).prop_map(
            |(provider, rotated_at_unix, next_rotation_unix)| {
                Response::Rotated(tokend_protocol::RotationOutcome {
                    provider,
                    rotated_at_unix,
                    next_rotation_unix,
                })
            }
        ),
        proptest::collection::vec(
            (".{0,32}", any::<bool>(), ".{0,64}", ".{0,32}", ".{0,32}"),
            0..4
        )
        .prop_map(|routes| {
            Response::CredentialRoutes(
                routes
                    .into_iter()
                    .map(|(provider, git, host, username, path)| CredentialRoute {
                        provider,
                        tool: if git {
                            CredentialTool::Git
                        } else {
                            CredentialTool::Docker
                        },
                        host,
                        username,
                        path,
                    })
                    .collect(),
            )
        }),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(request in any_request()) {
        let bytes = codec::encode(&request).unwrap();
        prop_assert_eq!(codec::decode::<Request>(&bytes).unwrap(), request);
    }

    #[test]
    fn a_get_token_reads_in_place_exactly_as_decoded(request in any_request()) {
        // The daemon's allocation-free read of the hottest request agrees with the decoder,
        // and takes no other request for one.
        let bytes = codec::encode(&request).unwrap();
        let borrowed = codec::decode_get_token(&bytes);
        match &request {
            Request::GetToken(get) => {
                let borrowed = borrowed.expect("a GetToken reads in place");
                prop_assert_eq!(borrowed.provider, get.provider.as_str());
                prop_assert_eq!(borrowed.min_ttl_secs, get.min_ttl_secs);
            }
            _ => prop_assert!(borrowed.is_none()),
        }
    }

    #[test]
    fn responses_round_trip(response in any_response()) {
        let bytes = codec::encode(&response).unwrap();
        prop_assert_eq!(codec::decode::<Response>(&bytes).unwrap(), response);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = codec::decode::<Request>(&bytes);
        let _ = codec::decode_get_token(&bytes);
        let _ = codec::decode::<Response>(&bytes);
        let _ = Hello::decode(&bytes);
        let _ = Welcome::decode(&bytes);
    }

    #[test]
    fn frame_reader_never_returns_more_than_the_limit(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        max in 0usize..2048,
    ) {
        let mut cursor = std::io::Cursor::new(bytes);
        while let Ok(Some(frame)) = read_frame(&mut cursor, max) {
            prop_assert!(frame.len() <= max);
        }
    }

    #[test]
    fn frames_round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
        let mut wire = Vec::new();
        for payload in &payloads {
            write_frame(&mut wire, payload).unwrap();
        }
        let mut cursor = std::io::Cursor::new(wire);
        for payload in &payloads {
            let frame = read_frame(&mut cursor, MAX_FRAME_LEN).unwrap().unwrap();
            prop_assert_eq!(frame.as_slice(), payload.as_slice());
        }
        prop_assert!(read_frame(&mut cursor, MAX_FRAME_LEN).unwrap().is_none());
    }
}

#[test]
fn a_length_inside_a_payload_cannot_allocate_past_the_limit() {
    // Request::GetToken whose provider string claims u64::MAX bytes (varint 0xFF + 8 bytes).
    let mut hostile = vec![0u8, 0xff];
    hostile.extend_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        codec::decode::<Request>(&hostile),
        Err(ProtocolError::Decode(_))
    ));
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = codec::encode(&Request::Ping).unwrap();
    bytes.push(0);
    assert!(matches!(
        codec::decode::<Request>(&bytes),
        Err(ProtocolError::Decode(_))
    ));
}

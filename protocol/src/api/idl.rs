//! The `interface!` macro: the interface definition language of the protocol.

/// Turns the list of requests in [`api`](crate::api) into everything that must agree with it.
///
/// Each entry is one request: its doc comment, its name and fields (exactly as in the
/// [`Request`](crate::Request) enum; leave the braces out for a request without fields), the
/// method name, the [`Reply`](crate::Reply) variant it expects on success, and the errors it
/// may return ([`ErrorCode`](crate::ErrorCode) names):
///
/// ```text
/// interface! {
///     /// Corresponds to `kmem_cache_free()`.
///     Free {
///         /// The cache the client believes the object belongs to.
///         cache: CacheId,
///         /// The object.
///         handle: Handle,
///     } => fn free -> Done, errors [NoSuchCache, InvalidObject, WrongCache, DoubleFree];
///
///     /// The frame pool and this client's frames, quota and counters.
///     Stats => fn stats -> Stats, errors [];
/// }
/// ```
///
/// From that it generates, in entry order (which is wire order: the postcard variant index):
///
/// * `enum Request` with one variant per entry (`Free { cache, handle }`, `Stats`), and its
///   [`WireSize`](crate::WireSize) (the largest variant, from the field types);
/// * `trait Service`: one method per entry taking the caller and the fields, returning the
///   reply's value (`fn free(&mut self, caller: ClientId, cache: CacheId, handle: Handle) ->
///   Result<(), Error>`; `payload::Done` is `()`), and `fn route`, which hands a decoded
///   request to the matching method and wraps its value in the reply;
/// * on `Client<T: Transport>` one method per entry (`fn free(&mut self, cache, handle) ->
///   Result<(), CallError>`) that encodes, calls, decodes and checks the reply's variant;
/// * [`RequestInfo`](crate::api::RequestInfo) per entry: [`REQUESTS`](crate::api::REQUESTS)
///   in wire order and [`Request::info`](crate::Request::info).
macro_rules! interface {
    // The metadata of one entry.
    (@info $request:ident $method:ident $reply:ident [$($field:ident)*] [$($error:ident)*]) => {
        $crate::api::RequestInfo {
            name: stringify!($request),
            method: stringify!($method),
            reply: stringify!($reply),
            fields: &[$(stringify!($field)),*],
            errors: &[$($crate::ErrorCode::$error),*],
        }
    };

    ($(
        $(#[$attr:meta])*
        $request:ident $({ $( $(#[$field_attr:meta])* $field:ident : $ty:ty ),* $(,)? })?
            => fn $method:ident -> $reply:ident, errors [$($error:ident),* $(,)?];
    )*) => {
        /// A request from a client to the server: one variant per entry of the interface in
        /// [`api`](crate::api), in wire order.
        ///
        /// Every request gets exactly one [`Reply`](crate::Reply): the variant named in its
        /// doc on success, or `Reply::Error` with one of its declared errors (or, at the door,
        /// `Malformed` for bytes that do not decode and `PermissionDenied` before `Hello`).
        #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        pub enum Request {
            $(
                $(#[$attr])*
                #[doc = ""]
                #[doc = concat!(
                    "Reply: `", stringify!($reply), "`. Declared errors: \\[", stringify!($($error),*), "\\]."
                )]
                $request $({ $( $(#[$field_attr])* $field: $ty ),* })?,
            )*
        }

        impl $crate::WireSize for Request {
            const MAX_ENCODED: usize = $crate::wire_size::ENUM_TAG
                + $crate::wire_size::max_of(&[
                    $( 0 $($( + <$ty as $crate::WireSize>::MAX_ENCODED )*)? ),*
                ]);
        }

        impl Request {
            /// What the interface declares about this request.
            pub const fn info(&self) -> &'static $crate::api::RequestInfo {
                match self {
                    $(
                        Request::$request { .. } => {
                            const INFO: $crate::api::RequestInfo =
                                interface!(@info $request $method $reply [$($($field)*)?] [$($error)*]);
                            &INFO
                        }
                    )*
                }
            }

            /// The request's name (`"Alloc"`).
            pub const fn name(&self) -> &'static str {
                self.info().name
            }
        }

        /// Every request of the interface, in wire order (index = postcard variant index).
        pub const REQUESTS: &[$crate::api::RequestInfo] = &[
            $( interface!(@info $request $method $reply [$($($field)*)?] [$($error)*]) ),*
        ];

        /// The server side of the interface: one method per request, called with the
        /// decoded, already-checked fields by [`route`]. The value returned becomes the reply;
        /// an error becomes `Reply::Error`.
        pub trait Service {
            $(
                $(#[$attr])*
                // A method takes its request's fields as they are (`CacheCreate` has seven).
                #[allow(clippy::too_many_arguments)]
                fn $method(&mut self, caller: $crate::ClientId $($(, $field: $ty)*)?)
                    -> Result<$crate::reply::payload::$reply, $crate::Error>;
            )*
        }

        /// Hands `request` from `caller` to the [`Service`] method of its kind and wraps the
        /// value in its reply.
        pub fn route<S: Service + ?Sized>(
            service: &mut S,
            caller: $crate::ClientId,
            request: Request,
        ) -> Result<$crate::Reply, $crate::Error> {
            match request {
                $(
                    Request::$request $({ $($field),* })? => service
                        .$method(caller $($(, $field)*)?)
                        .map($crate::reply::ReplyValue::into_reply),
                )*
            }
        }

        impl<T: $crate::Transport> $crate::api::Client<T> {
            $(
                $(#[$attr])*
                pub fn $method(&mut self $($(, $field: $ty)*)?)
                    -> Result<$crate::reply::payload::$reply, $crate::api::CallError> {
                    self.request(&Request::$request $({ $($field),* })?)
                }
            )*
        }
    };
}

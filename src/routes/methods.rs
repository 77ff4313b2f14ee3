//! A resource's handlers by method, and its `405` answer, which lists those methods in `Allow`
//! (RFC 9110 §15.5.6: a 405 response MUST carry `Allow`; §10.2.1: the methods the target
//! resource supports). The route table names each method once, and the header follows from it:
//!
//! ```text
//! both(cfg, "/o/token/", |r| {
//!     r.post(oauth::token)
//!         .options(oauth::preflight)
//!         .otherwise(oauth::method_not_allowed)
//! });
//! ```
//!
//! The 405 answer itself (its body: JSON on the OAuth and API endpoints, a page on the hosted
//! pages) is the area's `method_not_allowed` handler; [`Methods::otherwise`] adds the header.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpRequest, Resource, Responder};

/// A resource under construction, with the methods it answers so far.
pub struct Methods {
    resource: Resource,
    allowed: Vec<Method>,
}

impl Methods {
    /// The resource at `path`, answering no method yet.
    pub fn new(path: &str) -> Self {
        Self {
            resource: web::resource(path),
            allowed: Vec::new(),
        }
    }

    /// `GET` answered by `handler`.
    pub fn get<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::GET, handler)
    }

    /// `POST` answered by `handler`.
    pub fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::POST, handler)
    }

    /// `OPTIONS` (a CORS preflight) answered by `handler`.
    pub fn options<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.on(Method::OPTIONS, handler)
    }

    /// `method` answered by `handler`.
    fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self.resource.route(web::method(method.clone()).to(handler));
        self.allowed.push(method);
        self
    }

    /// The finished resource: any other method gets `answer`'s `405`, with `Allow` listing the
    /// methods registered above.
    pub fn otherwise<F, R>(self, answer: F) -> Resource
    where
        F: Handler<(HttpRequest,), Output = R>,
        R: Responder + 'static,
    {
        let allow = allow_value(&self.allowed);
        self.resource
            .default_service(web::to(move |req: HttpRequest| {
                let answer = answer.clone();
                let allow = allow.clone();
                async move {
                    let mut response = answer
                        .call((req.clone(),))
                        .await
                        .respond_to(&req)
                        .map_into_boxed_body();
                    if let Some(allow) = allow {
                        response.headers_mut().insert(header::ALLOW, allow);
                    }
                    response
                }
            }))
    }
}

/// `Allow`'s value for `methods`: `GET, POST` (RFC 9110 §10.2.1). Method names are tokens, so
/// this is never `None` for the methods [`Methods`] registers.
fn allow_value(methods: &[Method]) -> Option<HeaderValue> {
    let list: Vec<&str> = methods.iter().map(Method::as_str).collect();
    HeaderValue::from_str(&list.join(", ")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_the_methods_in_order() {
        let value = allow_value(&[Method::POST, Method::OPTIONS]).expect("a header value");
        assert_eq!(value, "POST, OPTIONS");
        let value = allow_value(&[Method::GET]).expect("a header value");
        assert_eq!(value, "GET");
    }
}

//! The admin listener's endpoints as one table of method and path template:
//! the router matches a request against it, and the OpenAPI document
//! (`GET /api/v1/openapi.json`) is tested against it.

use http::Method;

/// One thing the admin listener answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Metrics,
    Healthz,
    Readyz,
    OpenApi,
    Routes,
    Weights,
    Stage,
    Slices,
    Audit,
    Feedback,
    Reload,
    Approvals,
    Approval,
    Decide,
}

/// Every endpoint: method, path template (`{name}` is one path segment, a
/// parameter) and what answers it. The only list of them.
pub const TABLE: &[(Method, &str, Endpoint)] = &[
    (Method::GET, "/metrics", Endpoint::Metrics),
    (Method::GET, "/healthz", Endpoint::Healthz),
    (Method::GET, "/readyz", Endpoint::Readyz),
    (Method::GET, "/api/v1/openapi.json", Endpoint::OpenApi),
    (Method::GET, "/api/v1/routes", Endpoint::Routes),
    (
        Method::POST,
        "/api/v1/routes/{route}/weights",
        Endpoint::Weights,
    ),
    (
        Method::POST,
        "/api/v1/routes/{route}/stage",
        Endpoint::Stage,
    ),
    (
        Method::GET,
        "/api/v1/routes/{route}/slices",
        Endpoint::Slices,
    ),
    (Method::GET, "/api/v1/audit", Endpoint::Audit),
    (Method::POST, "/api/v1/feedback", Endpoint::Feedback),
    (Method::POST, "/api/v1/reload", Endpoint::Reload),
    (Method::GET, "/api/v1/approvals", Endpoint::Approvals),
    (Method::GET, "/api/v1/approvals/{id}", Endpoint::Approval),
    (Method::POST, "/api/v1/approvals/{id}", Endpoint::Decide),
];

/// What a request's method and path match.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// An endpoint, with its path parameters (percent-decoded) in template order.
    Endpoint(Endpoint, Vec<String>),
    /// A known path, another method: 405 with these in `Allow`.
    WrongMethod(Vec<Method>),
    /// No such path: 404.
    Nothing,
}

/// Matches `method` and `path` against [`TABLE`].
pub fn find(method: &Method, path: &str) -> Found {
    let mut allowed = Vec::new();
    for (m, template, endpoint) in TABLE {
        let Some(params) = matches(template, path) else {
            continue;
        };
        if m == method {
            return Found::Endpoint(*endpoint, params);
        }
        allowed.push(m.clone());
    }
    if allowed.is_empty() {
        Found::Nothing
    } else {
        Found::WrongMethod(allowed)
    }
}

/// The parameters of `path` under `template`, or `None` when it does not
/// match. A parameter is one non-empty segment.
fn matches(template: &str, path: &str) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut want = template.split('/');
    let mut have = path.split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return Some(params),
            (Some(w), Some(h)) if w.starts_with('{') => {
                if h.is_empty() {
                    return None;
                }
                let decoded = percent_encoding::percent_decode_str(h).decode_utf8_lossy();
                params.push(decoded.into_owned());
            }
            (Some(w), Some(h)) if w == h => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_finds_its_endpoint_and_parameters() {
        assert_eq!(
            find(&Method::POST, "/api/v1/routes/lead%20score/weights"),
            Found::Endpoint(Endpoint::Weights, vec!["lead score".into()])
        );
        assert_eq!(
            find(&Method::GET, "/api/v1/approvals/7"),
            Found::Endpoint(Endpoint::Approval, vec!["7".into()])
        );
        assert_eq!(
            find(&Method::GET, "/healthz"),
            Found::Endpoint(Endpoint::Healthz, vec![])
        );
    }

    #[test]
    fn a_known_path_with_another_method_lists_the_allowed_ones() {
        assert_eq!(
            find(&Method::DELETE, "/api/v1/approvals/7"),
            Found::WrongMethod(vec![Method::GET, Method::POST])
        );
        assert_eq!(
            find(&Method::POST, "/metrics"),
            Found::WrongMethod(vec![Method::GET])
        );
    }

    #[test]
    fn anything_else_is_nothing() {
        for path in [
            "/",
            "/api/v1/",
            "/api/v1/routes/",
            "/api/v1/routes//weights",
            "/api/v1/routes/a/weights/extra",
            "/metrics/",
            "/api/v1/nothing",
        ] {
            assert_eq!(find(&Method::GET, path), Found::Nothing, "{path}");
            assert_eq!(find(&Method::POST, path), Found::Nothing, "{path}");
        }
    }
}

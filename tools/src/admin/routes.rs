//! The admin endpoint's dispatch table: which path and method reach which handler.
//!
//! API: `route(method, path) -> Route` or the 404/405 refusal. Pure; fuzzed through `conn`.

use super::http::{Refusal, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Stats,
    Preload,
    Health,
}

/// Path, method, route.
const ROUTES: &[(&str, &str, Route)] = &[
    ("/metrics", "GET", Route::Metrics),
    ("/v1/stats", "GET", Route::Stats),
    ("/v1/preload", "POST", Route::Preload),
    ("/healthz", "GET", Route::Health),
];

pub fn route(method: &str, path: &str) -> Result<Route, Refusal> {
    let Some(&(_, allowed, route)) = ROUTES.iter().find(|(p, _, _)| *p == path) else {
        let paths: Vec<String> = ROUTES.iter().map(|(p, m, _)| format!("{m} {p}")).collect();
        return Err(Refusal::new(Status::NotFound, format!("no such path; this endpoint has {}", paths.join(", "))));
    };
    if method != allowed {
        let mut refusal = Refusal::new(Status::MethodNotAllowed, format!("{path} takes {allowed}, not {method}"));
        refusal.allow = Some(allowed);
        return Err(refusal);
    }
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/metrics"), Ok(Route::Metrics));
        assert_eq!(route("GET", "/v1/stats"), Ok(Route::Stats));
        assert_eq!(route("POST", "/v1/preload"), Ok(Route::Preload));
        assert_eq!(route("GET", "/healthz"), Ok(Route::Health));
        assert_eq!(route("GET", "/nope").map_err(|r| r.status), Err(Status::NotFound));
        assert_eq!(route("GET", "/metrics/").map_err(|r| r.status), Err(Status::NotFound));
        let refusal = route("GET", "/v1/preload").expect_err("wrong method");
        assert_eq!((refusal.status, refusal.allow), (Status::MethodNotAllowed, Some("POST")));
        assert_eq!(route("get", "/metrics").map_err(|r| r.status), Err(Status::MethodNotAllowed));
    }
}

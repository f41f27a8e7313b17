//! The error answers no single route owns, written into the spec by rule.
//!
//! The auth middleware and the extractors answer the same way on every route
//! they guard: a protected route can answer 401, a JSON body 400, 413, 415 and
//! 422, a query string 400 and 422, a path id 404. Adding these by hand to
//! each operation would drift; deriving them from what the operation declares
//! (security, request body, parameters) cannot. Statuses that depend on the
//! handler (403 for its role, 404 for a lookup in the body, 409, 502) stay in
//! its own `#[utoipa::path]`. Every added status refers to one `Problem`
//! response component; an answer a route documents itself is never replaced.

use std::collections::BTreeMap;

use icehouse_api::Problem;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, PartialSchema, ToSchema};

const PROBLEM_RESPONSE: &str = "Problem";
const PROBLEM_JSON: &str = "application/problem+json";

pub struct CommonProblems;

impl Modify for CommonProblems {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut schemas = vec![(Problem::name().into_owned(), Problem::schema())];
        Problem::schemas(&mut schemas);
        for (name, schema) in schemas {
            components.schemas.entry(name).or_insert(schema);
        }
        components.responses.insert(
            PROBLEM_RESPONSE.into(),
            RefOr::T(
                ResponseBuilder::new()
                    .description("An RFC 9457 problem: a stable `type`, a `title`, the `errors` by field")
                    .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build())
                    .build(),
            ),
        );
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                add_common(operation);
            }
        }
    }
}

fn add_common(operation: &mut Operation) {
    let has_param = |place: ParameterIn| {
        operation.parameters.iter().flatten().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    let protected = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let body = operation.request_body.is_some();
    let query = has_param(ParameterIn::Query);
    let path = has_param(ParameterIn::Path);

    let mut common: BTreeMap<u16, &str> = BTreeMap::new();
    if protected {
        common.insert(401, "No bearer token, or one that is invalid, expired or revoked");
    }
    let malformed = match (body, query) {
        (true, true) => Some("The body is not JSON of the expected shape, or a query parameter is unknown or mistyped"),
        (true, false) => Some("The body is not JSON of the expected shape; `errors` names the field"),
        (false, true) => Some("A query parameter is unknown or not of its type; `errors` names it"),
        (false, false) => None,
    };
    if let Some(description) = malformed {
        common.insert(400, description);
    }
    if body {
        common.insert(413, "The body is larger than the server accepts (`http.max_body_bytes`)");
        common.insert(415, "The body is not sent as `application/json`");
    }
    // Every request body and query of this API has bounds its handler checks.
    if body || query {
        common.insert(422, "Some values are out of bounds or invalid; `errors` names each field");
    }
    if path {
        // An id that does not parse names nothing, the same as a missing one.
        common.insert(404, "No such object in the caller's tenant");
    }
    for (status, description) in common {
        let mut problem = Ref::from_response_name(PROBLEM_RESPONSE);
        problem.description = description.into();
        operation.responses.responses.entry(status.to_string()).or_insert(RefOr::Ref(problem));
    }
}

//! LIST requests: selectors, `limit` + `continue` pagination over a
//! consistent snapshot, and the list's `metadata.resourceVersion`.
//!
//! A continue token names the resourceVersion of the first page and the last
//! key served; later pages are cut from the state at that resourceVersion,
//! so a paginated list is one consistent view even while objects change. A
//! token older than the compacted history gets 410 Expired, as from a real
//! server. List items carry no `apiVersion`/`kind`, as real servers send them.

use http::StatusCode;
use serde_json::{Value, json};

use super::store::{Key, Store};
use super::watch::Filter;

/// The list parameters that matter here.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub(crate) limit: Option<usize>,
    pub(crate) continue_token: Option<String>,
    pub(crate) resource_version: Option<String>,
    /// `resourceVersionMatch=Exact`: list the state at `resource_version`.
    pub(crate) exact: bool,
}

/// An error response: HTTP code, `Status.reason`, message.
pub(crate) type ListError = (StatusCode, &'static str, String);

/// The body of a list response.
pub(crate) fn list(store: &Store, filter: &Filter, query: &ListQuery) -> Result<Value, ListError> {
    let bad = |message: String| (StatusCode::BAD_REQUEST, "BadRequest", message);
    let (at, after) = match &query.continue_token {
        Some(token) => {
            let (rv, after) = decode_token(token)
                .ok_or_else(|| bad(format!("invalid continue token {token:?}")))?;
            (rv, Some(after))
        }
        None if query.exact => {
            let text = query.resource_version.as_deref().unwrap_or("");
            let rv = text.parse::<u64>().map_err(|_| {
                bad(format!(
                    "resourceVersionMatch=Exact needs a resourceVersion, got {text:?}"
                ))
            })?;
            (rv, None)
        }
        None => (store.resource_version(), None),
    };
    let snapshot = store
        .snapshot(filter.resource, filter.namespace.as_deref(), Some(at))
        .map_err(|expired| {
            let message = if query.continue_token.is_some() {
                "The provided continue parameter is too old to display a consistent list result. \
                 You can start a new list without the continue parameter."
                    .to_owned()
            } else {
                format!(
                    "too old resource version: {} ({})",
                    expired.requested, expired.oldest
                )
            };
            (StatusCode::GONE, "Expired", message)
        })?;
    let mut matching = snapshot
        .into_iter()
        .filter(|(key, object)| filter.matches(key, object))
        .filter(|(key, _)| {
            after
                .as_ref()
                .is_none_or(|(ns, name)| (&key.namespace, &key.name) > (ns, name))
        })
        .collect::<Vec<_>>();
    let mut metadata = json!({"resourceVersion": at.to_string()});
    if let Some(limit) = query.limit
        && matching.len() > limit
    {
        let remaining = matching.len() - limit;
        matching.truncate(limit);
        let last = &matching[limit - 1].0;
        metadata["continue"] = encode_token(at, last).into();
        metadata["remainingItemCount"] = remaining.into();
    }
    let items = matching
        .into_iter()
        .map(|(_, mut object)| {
            if let Some(map) = object.as_object_mut() {
                map.remove("apiVersion");
                map.remove("kind");
            }
            object
        })
        .collect::<Vec<_>>();
    Ok(json!({
        "kind": filter.resource.list_kind(),
        "apiVersion": filter.resource.api_version(),
        "metadata": metadata,
        "items": items,
    }))
}

/// An opaque token: hex of `<rv>\n<namespace>\n<name>`.
fn encode_token(resource_version: u64, last: &Key) -> String {
    format!("{resource_version}\n{}\n{}", last.namespace, last.name)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_token(token: &str) -> Option<(u64, (String, String))> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(3, '\n');
    let rv = parts.next()?.parse().ok()?;
    Some((rv, (parts.next()?.to_owned(), parts.next()?.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::super::resource::Resource;
    use super::super::selector::{FieldSelector, LabelSelector};
    use super::*;

    fn store_with(names: &[(&str, &str)]) -> Store {
        let mut store = Store::default();
        for (ns, name) in names {
            let key = Key {
                resource: Resource::Services,
                namespace: (*ns).into(),
                name: (*name).into(),
            };
            store.put(key, json!({"metadata": {"name": name, "namespace": ns}}));
        }
        store
    }

    fn filter(namespace: Option<&str>) -> Filter {
        Filter {
            resource: Resource::Services,
            namespace: namespace.map(str::to_owned),
            labels: LabelSelector::default(),
            fields: FieldSelector::default(),
        }
    }

    fn names(body: &Value) -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn pages_are_consistent_and_namespaced() {
        let mut store = store_with(&[("ns", "a"), ("ns", "b"), ("other", "x"), ("ns", "c")]);
        let mut query = ListQuery {
            limit: Some(2),
            ..ListQuery::default()
        };
        let first = list(&store, &filter(Some("ns")), &query).unwrap();
        assert_eq!(names(&first), ["a", "b"]);
        assert!(first["items"][0].get("kind").is_none());
        assert_eq!(first["metadata"]["remainingItemCount"], json!(1));
        let rv = first["metadata"]["resourceVersion"].clone();

        // A change between pages does not show in the second page.
        store.delete(&Key {
            resource: Resource::Services,
            namespace: "ns".into(),
            name: "c".into(),
        });
        query.continue_token = Some(first["metadata"]["continue"].as_str().unwrap().to_owned());
        let second = list(&store, &filter(Some("ns")), &query).unwrap();
        assert_eq!(names(&second), ["c"]);
        assert_eq!(second["metadata"]["resourceVersion"], rv);
        assert!(second["metadata"].get("continue").is_none());

        store.compact();
        let (code, reason, _) = list(&store, &filter(Some("ns")), &query).unwrap_err();
        assert_eq!((code, reason), (StatusCode::GONE, "Expired"));

        let all = list(&store, &filter(None), &ListQuery::default()).unwrap();
        assert_eq!(names(&all), ["a", "b", "x"]);
    }

    #[test]
    fn bad_tokens_are_rejected() {
        let store = store_with(&[]);
        let query = ListQuery {
            continue_token: Some("zz".into()),
            ..ListQuery::default()
        };
        let (code, _, _) = list(&store, &filter(None), &query).unwrap_err();
        assert_eq!(code, StatusCode::BAD_REQUEST);
    }
}

//! Strict validation against Kubernetes 1.33's own OpenAPI schemas.
//!
//! The schemas are the `api/openapi-spec/v3` files of the k8s.io/kubernetes
//! module at [`KUBERNETES_133`] (downloaded through the Go module proxy into
//! the module cache), and, for custom resources, the `openAPIV3Schema` of
//! their CRDs. The validation is strict the way `fieldValidation=Strict`
//! is: a field the schema does not declare is an error, as are a wrong
//! type and a missing required field. (The 1.33 specs carry no enums, and
//! semantic rules live in the API server's code, which the API server test
//! runs.)

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::kustomize::{self, CRDS};

/// The Kubernetes release whose schemas validate the manifests.
pub(crate) const KUBERNETES_133: &str = "v1.33.13";

/// Schemas by name (`io.k8s.api.apps.v1.Deployment`), and the name of
/// each kind's schema by `apiVersion/kind`.
#[derive(Debug, Default)]
pub(crate) struct Schemas {
    pub(crate) by_name: Map<String, Value>,
    pub(crate) kinds: BTreeMap<String, String>,
}

impl Schemas {
    /// Adds the `components.schemas` of one OpenAPI v3 document.
    pub(crate) fn add_openapi(&mut self, document: &Value) {
        let Some(schemas) = document["components"]["schemas"].as_object() else {
            return;
        };
        for (name, schema) in schemas {
            for gvk in schema["x-kubernetes-group-version-kind"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let group = gvk["group"].as_str().unwrap_or_default();
                let version = gvk["version"].as_str().unwrap_or_default();
                let api_version = if group.is_empty() {
                    version.to_owned()
                } else {
                    format!("{group}/{version}")
                };
                let kind = gvk["kind"].as_str().unwrap_or_default();
                self.kinds
                    .insert(format!("{api_version}/{kind}"), name.clone());
            }
            self.by_name.insert(name.clone(), schema.clone());
        }
    }

    /// Adds every served version of a CRD (as JSON); its objects' metadata
    /// is validated as an ObjectMeta.
    pub(crate) fn add_crd(&mut self, crd: &Value) {
        let group = crd["spec"]["group"].as_str().unwrap_or_default();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or_default();
        for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
            let name = version["name"].as_str().unwrap_or_default();
            let mut schema = version["schema"]["openAPIV3Schema"].clone();
            schema["properties"]["metadata"] = serde_json::json!({
                "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
            });
            let key = format!("crd.{group}.{name}.{kind}");
            self.kinds
                .insert(format!("{group}/{name}/{kind}"), key.clone());
            self.by_name.insert(key, schema);
        }
    }

    /// Problems of one object (as JSON), `what` naming it.
    pub(crate) fn validate(&self, object: &Value, what: &str) -> Vec<String> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let Some(name) = self.kinds.get(&format!("{api_version}/{kind}")) else {
            return vec![format!("{what}: no schema for {api_version} {kind}")];
        };
        let mut out = Vec::new();
        self.check(object, &self.by_name[name], "", &mut out);
        out.into_iter().map(|p| format!("{what}: {p}")).collect()
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> Option<&'a Value> {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap_or_default();
                self.by_name.get(name)
            }
            None => Some(schema),
        }
    }

    fn check(&self, value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
        let Some(schema) = self.resolve(schema) else {
            out.push(format!("{path}: unresolvable schema {}", schema["$ref"]));
            return;
        };
        for part in schema["allOf"].as_array().into_iter().flatten() {
            self.check(value, part, path, out);
        }
        let int_or_string = schema["x-kubernetes-int-or-string"] == Value::Bool(true)
            || schema["format"] == "int-or-string";
        if int_or_string {
            if !(value.is_i64() || value.is_u64() || value.is_string()) {
                out.push(format!(
                    "{path}: {value} is neither an integer nor a string"
                ));
            }
            return;
        }
        if let Some(options) = schema["oneOf"].as_array() {
            let fits = options.iter().any(|option| {
                let mut problems = Vec::new();
                self.check(value, option, path, &mut problems);
                problems.is_empty()
            });
            if !fits {
                out.push(format!("{path}: {value} fits none of {options:?}"));
            }
        }
        if value.is_null() {
            return;
        }
        match schema["type"].as_str() {
            Some("object") => self.check_object(value, schema, path, out),
            Some("array") => match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, &schema["items"], &format!("{path}[{i}]"), out);
                    }
                }
                None => out.push(format!("{path}: {value} is not an array")),
            },
            Some("string") if !value.is_string() => {
                out.push(format!("{path}: {value} is not a string"));
            }
            Some("integer") if !(value.is_i64() || value.is_u64()) => {
                out.push(format!("{path}: {value} is not an integer"));
            }
            Some("number") if !value.is_number() => {
                out.push(format!("{path}: {value} is not a number"));
            }
            Some("boolean") if !value.is_boolean() => {
                out.push(format!("{path}: {value} is not a boolean"));
            }
            _ => {}
        }
    }

    fn check_object(&self, value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
        let Some(fields) = value.as_object() else {
            out.push(format!("{path}: {value} is not an object"));
            return;
        };
        for required in schema["required"].as_array().into_iter().flatten() {
            let required = required.as_str().unwrap_or_default();
            if !fields.contains_key(required) {
                out.push(format!("{path}: required field {required} is missing"));
            }
        }
        let properties = schema["properties"].as_object();
        let additional = &schema["additionalProperties"];
        let free = schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true)
            || (properties.is_none() && additional.is_null());
        for (key, field) in fields {
            let here = format!("{path}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(property) => self.check(field, property, &here, out),
                None if additional.is_object() => self.check(field, additional, &here, out),
                None if free || *additional == Value::Bool(true) => {}
                None => out.push(format!("{here}: unknown field")),
            }
        }
    }
}

/// Kubernetes 1.33's schemas and the CRDs' (each CRD's YAML read as JSON).
pub(crate) fn load() -> Result<Schemas, String> {
    let dir =
        kustomize::module_dir("k8s.io/kubernetes", KUBERNETES_133)?.join("api/openapi-spec/v3");
    let mut schemas = Schemas::default();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("list {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("list {}: {e}", dir.display()))?
            .path();
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let document: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        schemas.add_openapi(&document);
    }
    for crd in &CRDS {
        let text = kustomize::crd(crd)?;
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", crd.path))?;
        let json = serde_json::to_value(&yaml).map_err(|e| format!("{}: {e}", crd.path))?;
        schemas.add_crd(&json);
    }
    Ok(schemas)
}

/// Problems of every object of the multi-document YAML `text`.
pub(crate) fn validate_yaml(schemas: &Schemas, what: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = match serde_yaml::Value::deserialize(document) {
            Ok(value) if value.is_null() => continue,
            Ok(value) => value,
            Err(e) => {
                out.push(format!("{what}#{}: bad YAML: {e}", i + 1));
                continue;
            }
        };
        match serde_json::to_value(&value) {
            Ok(json) => {
                let label = format!(
                    "{what}: {}/{}",
                    json["kind"].as_str().unwrap_or("?"),
                    json["metadata"]["name"].as_str().unwrap_or("?")
                );
                out.extend(schemas.validate(&json, &label));
            }
            Err(e) => out.push(format!("{what}#{}: not JSON: {e}", i + 1)),
        }
    }
    out
}

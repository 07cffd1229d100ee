//! Changing the fake API server's objects: apply (typed or raw JSON),
//! get, modify and delete, the endpoint changes the EndpointSlice
//! controller makes, GRPCRoutes and their CRD.

use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;

use super::FakeKube;
use crate::fake_kube::fixtures::{DEFAULT_NAMESPACE, EndpointFixture, EndpointState};
use crate::fake_kube::resource::{IntoStored, Resource, Stored};
use crate::fake_kube::store::Key;

impl FakeKube {
    /// Creates or replaces an object (a fixture or a typed object); its
    /// namespace defaults to [`DEFAULT_NAMESPACE`]. Returns it as stored,
    /// with its new resourceVersion.
    ///
    /// # Panics
    ///
    /// When the object has no name.
    pub fn apply<T: IntoStored>(&self, object: T) -> T::Object {
        let value = serde_json::to_value(object.into_stored()).expect("serialize object");
        let stored = self.apply_raw(T::Object::RESOURCE, value);
        serde_json::from_value(stored).expect("stored object reads back")
    }

    /// Creates or replaces an object given as JSON, which need not match the
    /// schema (to test how clients treat malformed objects). Returns it as
    /// stored.
    ///
    /// # Panics
    ///
    /// When the object has no `metadata.name`.
    pub fn apply_raw(&self, resource: Resource, mut object: Value) -> Value {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .expect("object has metadata.name")
            .to_owned();
        let namespace = match object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
        {
            Some(ns) => ns.to_owned(),
            None => {
                object["metadata"]["namespace"] = DEFAULT_NAMESPACE.into();
                DEFAULT_NAMESPACE.to_owned()
            }
        };
        let key = Key {
            resource,
            namespace,
            name,
        };
        self.shared
            .store
            .lock()
            .expect("store lock")
            .put(key, object)
    }

    /// The object `namespace/name` of type `K`, if present.
    pub fn get<K: Stored>(&self, namespace: &str, name: &str) -> Option<K> {
        let store = self.shared.store.lock().expect("store lock");
        let object = store.get(&key::<K>(namespace, name))?.clone();
        Some(serde_json::from_value(object).expect("stored object is well-formed"))
    }

    /// Changes the object `namespace/name` of type `K` with `change` and
    /// stores it (under one lock, so nothing interleaves). Returns it.
    ///
    /// # Panics
    ///
    /// When it does not exist.
    pub fn modify<K: Stored>(&self, namespace: &str, name: &str, change: impl FnOnce(&mut K)) -> K {
        let key = key::<K>(namespace, name);
        let mut store = self.shared.store.lock().expect("store lock");
        let current = store
            .get(&key)
            .unwrap_or_else(|| panic!("no {} {namespace}/{name} to modify", K::RESOURCE.kind()))
            .clone();
        let mut object: K = serde_json::from_value(current).expect("stored object is well-formed");
        change(&mut object);
        let value = serde_json::to_value(object).expect("serialize object");
        serde_json::from_value(store.put(key, value)).expect("stored object reads back")
    }

    /// Deletes the object `namespace/name` of type `K`; returns whether it existed.
    pub fn delete<K: Stored>(&self, namespace: &str, name: &str) -> bool {
        let mut store = self.shared.store.lock().expect("store lock");
        store.delete(&key::<K>(namespace, name)).is_some()
    }

    /// Deletes Service `namespace/name`; returns whether it existed.
    pub fn delete_service(&self, namespace: &str, name: &str) -> bool {
        self.delete::<Service>(namespace, name)
    }

    /// Deletes EndpointSlice `namespace/name`; returns whether it existed.
    pub fn delete_endpoint_slice(&self, namespace: &str, name: &str) -> bool {
        self.delete::<EndpointSlice>(namespace, name)
    }

    /// Sets the conditions of the endpoint with `address` in slice
    /// `namespace/slice`, as the EndpointSlice controller does when a pod's
    /// readiness changes.
    ///
    /// # Panics
    ///
    /// When the slice or the address does not exist.
    pub fn set_endpoint_state(
        &self,
        namespace: &str,
        slice: &str,
        address: &str,
        state: EndpointState,
    ) {
        self.modify::<EndpointSlice>(namespace, slice, |s| {
            let endpoint = s
                .endpoints
                .iter_mut()
                .find(|e| e.addresses.iter().any(|a| a == address))
                .unwrap_or_else(|| panic!("no endpoint {address} in slice {namespace}/{slice}"));
            endpoint.conditions = Some(state.conditions());
        });
    }

    /// Adds an endpoint (a pod) to slice `namespace/slice`.
    pub fn add_endpoint(&self, namespace: &str, slice: &str, endpoint: EndpointFixture) {
        self.modify::<EndpointSlice>(namespace, slice, |s| s.endpoints.push(endpoint.build()));
    }

    /// Removes the endpoint with `address` from slice `namespace/slice`;
    /// returns whether it was there.
    pub fn remove_endpoint(&self, namespace: &str, slice: &str, address: &str) -> bool {
        let mut removed = false;
        self.modify::<EndpointSlice>(namespace, slice, |s| {
            let before = s.endpoints.len();
            s.endpoints
                .retain(|e| !e.addresses.iter().any(|a| a == address));
            removed = s.endpoints.len() != before;
        });
        removed
    }

    /// Creates or replaces a GRPCRoute given as JSON (its namespace
    /// defaults to [`DEFAULT_NAMESPACE`]); `apiVersion` and `kind` are
    /// filled in. Returns it as stored.
    pub fn apply_grpc_route(&self, mut route: Value) -> Value {
        route["apiVersion"] = Resource::GrpcRoutes.api_version().into();
        route["kind"] = Resource::GrpcRoutes.kind().into();
        self.apply_raw(Resource::GrpcRoutes, route)
    }

    /// Deletes GRPCRoute `namespace/name`; returns whether it existed.
    pub fn delete_grpc_route(&self, namespace: &str, name: &str) -> bool {
        let mut store = self.shared.store.lock().expect("store lock");
        store
            .delete(&Key {
                resource: Resource::GrpcRoutes,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
            .is_some()
    }

    /// Installs or uninstalls the GRPCRoute CRD: while it is not installed
    /// (the default), every GRPCRoute URL answers 404, as in a cluster
    /// without the Gateway API; objects stored meanwhile stay and show up
    /// once it is installed.
    pub fn set_grpc_routes_installed(&self, installed: bool) {
        self.shared.grpc_routes.store(installed, Ordering::SeqCst);
        if !installed {
            // Open watches end, as when a CRD is deleted.
            self.drop_watches();
        }
    }

    /// The newest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared
            .store
            .lock()
            .expect("store lock")
            .resource_version()
    }
}

fn key<K: Stored>(namespace: &str, name: &str) -> Key {
    Key {
        resource: K::RESOURCE,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

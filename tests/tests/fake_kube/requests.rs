//! Requests other than WATCH: a LIST in pages, filtered by label and kept
//! to its namespace, GET, and a kubeconfig whose context has a namespace.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use tests::bounded;
use tests::fake_kube::{
    EndpointSliceFixture, EndpointState, FakeKube, Resource, SERVICE_NAME_LABEL, ServiceFixture,
    Verb,
};

use crate::LIMIT;

#[tokio::test]
async fn lists_paginate_filter_by_label_and_stay_in_their_namespace() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        for name in ["a", "b", "c", "d", "e"] {
            kube.apply(ServiceFixture::new(name).port("grpc", 80, 8080));
        }
        kube.apply(ServiceFixture::new("elsewhere").namespace("other"));
        kube.apply(
            EndpointSliceFixture::for_service("a").endpoint("10.0.0.1", EndpointState::Ready),
        );
        kube.apply(
            EndpointSliceFixture::for_service("b").endpoint("10.0.0.2", EndpointState::Ready),
        );
        kube.apply(
            EndpointSliceFixture::for_service("a")
                .namespace("other")
                .endpoint("10.9.0.1", EndpointState::Ready),
        );
        let client = kube.client().await;

        let services = Api::<Service>::namespaced(client.clone(), "default");
        let mut names = Vec::new();
        let mut params = ListParams::default().limit(2);
        let mut pages = 0;
        let mut list_version = None;
        loop {
            let page = services.list(&params).await.expect("list services");
            pages += 1;
            let version = page
                .metadata
                .resource_version
                .clone()
                .expect("list resourceVersion");
            assert_eq!(
                *list_version.get_or_insert(version.clone()),
                version,
                "pages share one version"
            );
            names.extend(page.items.iter().map(|s| s.metadata.name.clone().unwrap()));
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
        assert_eq!(pages, 3);

        let slices = Api::<EndpointSlice>::namespaced(client.clone(), "default");
        let of_a = slices
            .list(&ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}=a")))
            .await
            .expect("list slices");
        assert_eq!(of_a.items.len(), 1);
        assert_eq!(of_a.items[0].endpoints[0].addresses, ["10.0.0.1"]);
        let labelled = slices
            .list(&ListParams::default().labels(SERVICE_NAME_LABEL))
            .await
            .expect("list by existence");
        assert_eq!(labelled.items.len(), 2);
        let all = Api::<EndpointSlice>::all(client.clone())
            .list(&ListParams::default())
            .await
            .unwrap();
        assert_eq!(
            all.items.len(),
            3,
            "the cluster-wide list sees the other namespace"
        );

        let got = services.get("c").await.expect("get c");
        assert_eq!(got.metadata.namespace.as_deref(), Some("default"));
        assert!(services.get_opt("nope").await.expect("get_opt").is_none());
        assert_eq!(kube.count(Resource::Services, Verb::List), 3);
        assert_eq!(kube.count(Resource::Services, Verb::Get), 2);
    })
    .await;
}

#[tokio::test]
async fn kubeconfig_can_carry_a_namespace() {
    bounded(LIMIT, async {
        let kube = FakeKube::start().await;
        let path = kube.kubeconfig_path().with_file_name("with-namespace");
        kube.write_kubeconfig(&path, Some("team-a"));
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        assert_eq!(config.default_namespace, "team-a");
        assert_eq!(config.cluster_url.to_string(), format!("{}/", kube.url()));
    })
    .await;
}

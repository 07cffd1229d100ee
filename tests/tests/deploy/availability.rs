//! Availability through voluntary disruptions and node failures: every
//! Deployment with two or more replicas has a PodDisruptionBudget that
//! lets a drain evict some but never all of its pods, and spreads its pods
//! over nodes (required) and zones.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::checks::selects;
use crate::repo::{Manifest, Object, deployments, pod_of};

pub(crate) const HOSTNAME: &str = "kubernetes.io/hostname";
pub(crate) const ZONE: &str = "topology.kubernetes.io/zone";

/// `value` of `replicas` as a pod count, percentages rounded up as the
/// disruption controller rounds them.
fn scaled(value: &IntOrString, replicas: i32) -> Result<i32, String> {
    match value {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(text) => {
            let percent: i32 = text
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("{text:?} is neither a number nor a percentage"))?;
            Ok((percent * replicas + 99) / 100)
        }
    }
}

/// How many of `replicas` pods `pdb` lets a drain evict at once.
fn evictable(pdb: &PodDisruptionBudget, replicas: i32) -> Result<i32, String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    match (&spec.max_unavailable, &spec.min_available) {
        (Some(max), None) => scaled(max, replicas),
        (None, Some(min)) => Ok(replicas - scaled(min, replicas)?),
        _ => Err("sets neither or both of maxUnavailable and minAvailable".into()),
    }
}

fn budgets(objects: &[Manifest]) -> impl Iterator<Item = (&Manifest, &PodDisruptionBudget)> {
    objects.iter().filter_map(|m| match &m.object {
        Object::PodDisruptionBudget(p) => Some((m, p)),
        _ => None,
    })
}

/// Every Deployment of two or more replicas has exactly one
/// PodDisruptionBudget, which allows evicting at least one pod (or drains
/// never finish) and fewer than all (two control-plane replicas must not
/// both go), and lets unhealthy pods go (`AlwaysAllow`: a crash-looping
/// pod must not block a drain). Every budget covers some Deployment.
pub(crate) fn disruption_budgets(objects: &[Manifest]) -> Vec<String> {
    let mut out = Vec::new();
    for (manifest, deployment) in deployments(objects) {
        let (name, labels, _) = pod_of(deployment);
        let replicas = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let covering: Vec<_> = budgets(objects)
            .filter(|(_, p)| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|s| selects(s, &labels))
            })
            .collect();
        if replicas < 2 && covering.is_empty() {
            continue;
        }
        let [(budget, pdb)] = covering.as_slice() else {
            out.push(format!(
                "{}: {replicas} replicas, covered by {} PodDisruptionBudgets (expected one)",
                manifest.label(),
                covering.len()
            ));
            continue;
        };
        match evictable(pdb, replicas) {
            Err(e) => out.push(format!("{}: {e}", budget.label())),
            Ok(n) if n < 1 => out.push(format!(
                "{}: lets a drain evict {n} of {name}'s {replicas} pods: drains would never finish",
                budget.label()
            )),
            Ok(n) if n >= replicas => out.push(format!(
                "{}: lets a drain evict {n} of {name}'s {replicas} pods at once, all of them",
                budget.label()
            )),
            Ok(_) => {}
        }
        let policy = pdb
            .spec
            .as_ref()
            .and_then(|s| s.unhealthy_pod_eviction_policy.as_deref());
        if policy != Some("AlwaysAllow") {
            out.push(format!(
                "{}: unhealthyPodEvictionPolicy is {policy:?}; AlwaysAllow lets a drain evict pods \
                 that are not ready",
                budget.label()
            ));
        }
    }
    for (budget, pdb) in budgets(objects) {
        let selector = pdb
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let covers = deployments(objects).any(|(_, d)| selects(&selector, &pod_of(d).1));
        if !covers {
            out.push(format!("{}: selects no Deployment's pods", budget.label()));
        }
    }
    out
}

/// Every Deployment of two or more replicas spreads its pods by hostname
/// (`DoNotSchedule`: two replicas on one node fail together) and by zone
/// (`ScheduleAnyway` is enough: clusters without zone labels must still
/// schedule), with `maxSkew: 1`. A required spread ignores tainted nodes
/// (`nodeTaintsPolicy: Honor`), or a drained, cordoned node would still
/// count as a domain and leave the evicted pod pending.
pub(crate) fn spreads(objects: &[Manifest]) -> Vec<String> {
    let mut out = Vec::new();
    for (manifest, deployment) in deployments(objects) {
        let replicas = deployment
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        if replicas < 2 {
            continue;
        }
        let (_, _, pod) = pod_of(deployment);
        let constraints = pod
            .and_then(|p| p.topology_spread_constraints.clone())
            .unwrap_or_default();
        for key in [HOSTNAME, ZONE] {
            let Some(c) = constraints.iter().find(|c| c.topology_key == key) else {
                out.push(format!(
                    "{}: {replicas} replicas but no topology spread by {key}",
                    manifest.label()
                ));
                continue;
            };
            if c.max_skew != 1 {
                out.push(format!(
                    "{}: {key} spread has maxSkew {}",
                    manifest.label(),
                    c.max_skew
                ));
            }
            let required = c.when_unsatisfiable == "DoNotSchedule";
            if key == HOSTNAME && !required {
                out.push(format!(
                    "{}: the {key} spread is {}; it must be DoNotSchedule, or replicas may share a node",
                    manifest.label(),
                    c.when_unsatisfiable
                ));
            }
            if required && c.node_taints_policy.as_deref() != Some("Honor") {
                out.push(format!(
                    "{}: the required {key} spread does not set nodeTaintsPolicy: Honor, so a \
                     cordoned node still counts and a drain can leave a pod pending",
                    manifest.label()
                ));
            }
        }
    }
    out
}

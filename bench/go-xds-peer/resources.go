package main

import (
	"fmt"
	"strconv"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The names the benchmark's subscribers ask for: what the Rust control
// plane serves for Service greeter (namespace default, port 80, named
// grpc), see control-plane/src/xds/names.rs.
const (
	listenerName = "greeter"
	clusterName  = "greeter.default.svc.cluster.local:80"
	zone         = "zone-a"
)

// service is the one service's state: each endpoint's readiness, and the
// version of each resource type (only the endpoints' changes).
type service struct {
	port           uint32
	ready          []bool
	endpointsBuilt int
	static         []types.Resource
}

func newService(port uint32) *service {
	return &service{port: port}
}

func (s *service) create(n int) {
	s.ready = make([]bool, n)
	for i := range s.ready {
		s.ready[i] = true
	}
}

func (s *service) toggle(i int) {
	s.ready[i] = !s.ready[i]
}

// endpointAddr mirrors bench/src/cphost.rs: 127.0.X.Y with X from 1.
func endpointAddr(i int) string {
	return fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250)
}

func ads() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}

func mustAny(m proto.Message) *anypb.Any {
	packed, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return packed
}

// The same shapes as control-plane/src/xds/resources.rs for a plain
// service: an API listener with RDS over ADS and the router filter, one
// virtual host for any domain routing prefix "" to the cluster, an EDS
// cluster over ADS with round robin, one locality per zone.
func listenerResource() *listener.Listener {
	manager := &hcm.HttpConnectionManager{
		StatPrefix: listenerName,
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			ConfigSource:    ads(),
			RouteConfigName: clusterName,
		}},
		HttpFilters: []*hcm.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: mustAny(&router.Router{})},
		}},
	}
	return &listener.Listener{
		Name:        listenerName,
		ApiListener: &listener.ApiListener{ApiListener: mustAny(manager)},
	}
}

func routeResource() *route.RouteConfiguration {
	return &route.RouteConfiguration{
		Name: clusterName,
		VirtualHosts: []*route.VirtualHost{{
			Name:    clusterName,
			Domains: []string{"*"},
			Routes: []*route.Route{{
				Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: ""}},
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_Cluster{Cluster: clusterName},
				}},
			}},
		}},
	}
}

func clusterResource() *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 clusterName,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{
			EdsConfig:   ads(),
			ServiceName: clusterName,
		},
		LbPolicy: cluster.Cluster_ROUND_ROBIN,
	}
}

func (s *service) assignment() *endpoint.ClusterLoadAssignment {
	lbEndpoints := make([]*endpoint.LbEndpoint, 0, len(s.ready))
	ready := 0
	for i, isReady := range s.ready {
		health := core.HealthStatus_UNHEALTHY
		if isReady {
			health = core.HealthStatus_HEALTHY
			ready++
		}
		lbEndpoints = append(lbEndpoints, &endpoint.LbEndpoint{
			HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Protocol:      core.SocketAddress_TCP,
					Address:       endpointAddr(i),
					PortSpecifier: &core.SocketAddress_PortValue{PortValue: s.port},
				}}},
				Hostname: "pod-" + strconv.Itoa(i),
			}},
			HealthStatus: health,
		})
	}
	return &endpoint.ClusterLoadAssignment{
		ClusterName: clusterName,
		Endpoints: []*endpoint.LocalityLbEndpoints{{
			Locality:            &core.Locality{Zone: zone},
			LbEndpoints:         lbEndpoints,
			LoadBalancingWeight: wrapperspb.UInt32(uint32(max(ready, 1))),
		}},
	}
}

// snapshot is the whole state as a snapshot. Listener, route and cluster
// never change, so they keep version "1" and their watches stay quiet; the
// assignment gets a new version on every change.
func (s *service) snapshot() *cachev3.Snapshot {
	if s.static == nil {
		s.static = []types.Resource{listenerResource(), routeResource(), clusterResource()}
	}
	s.endpointsBuilt++
	snapshot := &cachev3.Snapshot{}
	set := func(typeURL string, version string, items ...types.Resource) {
		snapshot.Resources[cachev3.GetResponseType(typeURL)] = cachev3.NewResources(version, items)
	}
	set(resource.ListenerType, "1", s.static[0])
	set(resource.RouteType, "1", s.static[1])
	set(resource.ClusterType, "1", s.static[2])
	set(resource.EndpointType, strconv.Itoa(s.endpointsBuilt), s.assignment())
	return snapshot
}

// Package metrics holds the provider's Prometheus metrics. Labels never carry
// secret paths or pod names: cardinality stays bounded however many pods a
// node runs.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "vault_csi_provider"

var (
	// Registry is what /metrics serves.
	Registry = prometheus.NewRegistry()

	// GRPCRequests counts provider API calls by method and gRPC code.
	GRPCRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "grpc_requests_total",
		Help:      "Provider API calls by method and gRPC status code.",
	}, []string{"method", "code"})

	// GRPCDuration observes provider API call latency.
	GRPCDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "grpc_request_duration_seconds",
		Help:      "Provider API call latency by method.",
		Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"method"})

	// VaultRequests counts Vault HTTP calls by kind (login, read, write) and
	// outcome (HTTP status, or "error" when no answer came).
	VaultRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "vault_requests_total",
		Help:      "Requests made to Vault by kind and status.",
	}, []string{"kind", "status"})

	// VaultDuration observes Vault call latency by kind.
	VaultDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "vault_request_duration_seconds",
		Help:      "Latency of requests made to Vault by kind.",
		Buckets:   prometheus.DefBuckets,
	}, []string{"kind"})

	// TokenCache counts how pods' Vault tokens were obtained: "hit" (cached
	// and fresh), "renewed", "login" (no usable token), "relogin" (after
	// Vault refused a cached token), "evicted" (for room; see CacheEvictions).
	TokenCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "token_cache_total",
		Help:      "Vault token cache outcomes.",
	}, []string{"outcome"})

	// LeaseCache counts how leased answers (dynamic credentials,
	// certificates) were served: "hit", "renewed", "issued".
	LeaseCache = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "lease_cache_total",
		Help:      "Lease cache outcomes for dynamic secrets and certificates.",
	}, []string{"outcome"})

	// CachedEntries reports the entries held by each cache.
	CachedEntries = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "cache_entries",
		Help:      "Entries in the provider's caches.",
	}, []string{"cache"})

	// CacheEvictions counts entries a cache dropped for room, by cache
	// (tokens, leases) and reason: "pod_quota" (the pod went over its own
	// -max-identities-per-pod or -max-leases-per-pod) or "capacity" (the
	// cache was full; taken from a pod holding the most entries). An
	// evicted token is not revoked.
	CacheEvictions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "cache_evictions_total",
		Help:      "Cache entries evicted for room, by cache (tokens, leases) and reason (pod_quota, capacity).",
	}, []string{"cache", "reason"})

	// VaultAddressServed counts Mounts by the position, in the failover
	// list, of the Vault address that served them (0 = the first).
	VaultAddressServed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "vault_address_served_total",
		Help:      "Mounts served, by position of the Vault address in the failover list (0 is the first).",
	}, []string{"position"})

	// MountsInFlight reports the Mounts holding an admission slot.
	MountsInFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "mounts_in_flight",
		Help:      "Mounts running (holding one of -max-concurrent-mounts slots).",
	})

	// MountsQueued reports the Mounts waiting for an admission slot.
	MountsQueued = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace,
		Name:      "mounts_queued",
		Help:      "Mounts waiting for a free slot (at most -max-queued-mounts).",
	})

	// MountAdmissionWait observes how long admitted Mounts waited for a
	// slot (about 0 when one was free).
	MountAdmissionWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "mount_admission_wait_seconds",
		Help:      "Time admitted Mounts waited for a free slot.",
		Buckets:   []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})

	// MountAdmissionRejections counts Mounts that never got a slot, by
	// reason: "queue_full" (refused at once), "deadline", "canceled" (while
	// waiting).
	MountAdmissionRejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "mount_admission_rejections_total",
		Help:      "Mounts refused a slot, by reason (queue_full, deadline, canceled).",
	}, []string{"reason"})

	// Objects counts objects rendered into files.
	Objects = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "objects_mounted_total",
		Help:      "Objects returned to the driver as files.",
	})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		GRPCRequests, GRPCDuration, VaultRequests, VaultDuration, Objects,
		TokenCache, LeaseCache, CachedEntries, CacheEvictions, VaultAddressServed,
		MountsInFlight, MountsQueued, MountAdmissionWait, MountAdmissionRejections,
	)
}

package server

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// alarmGauge is etcd_debugging_server_alarms: 1 for each raised alarm by
// member and type, 0 for each raised before and since disarmed.
type alarmGauge struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	now  []*pb.AlarmMember
	seen []*pb.AlarmMember
}

func newAlarmGauge() *alarmGauge {
	return &alarmGauge{desc: prometheus.NewDesc("etcd_debugging_server_alarms",
		"Alarms for every member in cluster. 1 for 'server_id' label with current ID. 2 for 'alarm_type' label with type of this alarm",
		[]string{"server_id", "alarm_type"}, nil)}
}

func sameAlarm(a, b *pb.AlarmMember) bool { return a.MemberID == b.MemberID && a.Alarm == b.Alarm }

// publish takes the raised alarms; on the loop.
func (g *alarmGauge) publish(alarms []*pb.AlarmMember) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.now = alarms
	for _, a := range alarms {
		if !slices.ContainsFunc(g.seen, func(b *pb.AlarmMember) bool { return sameAlarm(a, b) }) {
			g.seen = append(g.seen, a)
		}
	}
}

func (g *alarmGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *alarmGauge) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range g.seen {
		raised := slices.ContainsFunc(g.now, func(b *pb.AlarmMember) bool { return sameAlarm(a, b) })
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, boolValue(raised), hexID(a.MemberID), a.Alarm.String())
	}
}

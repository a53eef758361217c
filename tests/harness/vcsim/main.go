// Command vcsim serves govmomi's vCenter simulator for cotenancy's tests.
//
// Debian ships the simulator package but not its vcsim command, so this main builds the model,
// serves it over TLS on a loopback address and adds what the tests need and the simulator lacks:
//
//   - a workaround for the panic on Fetch of an unset property (e.g. VirtualMachine.snapshot);
//   - a minimal ScheduledTaskManager (CreateScheduledTask with a MethodAction run once at a time);
//   - VmMigratedEvent and correct HostSystem.vm lists after RelocateVM_Task;
//   - fault injection over HTTP: /vcsim/fault (next *_Task call fails or runs slowly, next call
//     of another method answers with a fault) and /vcsim/delay (model.DelayConfig method delays);
//   - a skewed vCenter clock over HTTP: /vcsim/clock (CurrentTime and the scheduled-task timers).
//
// The URL of the SDK endpoint is printed on stdout once the server accepts connections.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/template"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

type delayFlags map[string]int

func (d delayFlags) String() string { return fmt.Sprint(map[string]int(d)) }

func (d delayFlags) Set(v string) error {
	parts := strings.SplitN(v, "=", 2)
	if len(parts) != 2 {
		return fmt.Errorf("want Method=milliseconds, got %q", v)
	}
	ms, err := strconv.Atoi(parts[1])
	if err != nil {
		return err
	}
	d[parts[0]] = ms
	return nil
}

var model *simulator.Model

// clockOffset is how far (nanoseconds) the simulated vCenter's clock runs ahead of this host's.
var clockOffset int64

// vcNow is the simulated vCenter's time: what CurrentTime answers and scheduled tasks run by.
func vcNow() time.Time {
	return time.Now().Add(time.Duration(atomic.LoadInt64(&clockOffset)))
}

func main() {
	delays := delayFlags{}
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (loopback only)")
	dc := flag.Int("dc", 1, "datacenters")
	standalone := flag.Int("standalone-host", 0, "standalone hosts per datacenter")
	clusters := flag.Int("cluster", 1, "clusters per datacenter")
	clusterHosts := flag.Int("host", 3, "hosts per cluster")
	vms := flag.Int("vm", 2, "VMs per resource pool (one root pool per cluster and standalone host)")
	datastores := flag.Int("ds", 1, "datastores")
	username := flag.String("username", "user", "login user name")
	password := flag.String("password", "pass", "login password")
	certOut := flag.String("cert-out", "", "write the server certificate (PEM) here, to be used as CA bundle")
	flag.Var(delays, "delay", "Method=milliseconds delay (repeatable)")
	flag.Parse()

	host, _, err := net.SplitHostPort(*listen)
	if err != nil || !net.ParseIP(host).IsLoopback() {
		log.Fatalf("-listen must be a loopback address, got %q", *listen)
	}

	model = simulator.VPX()
	model.Datacenter = *dc
	model.Host = *standalone
	model.Cluster = *clusters
	model.ClusterHost = *clusterHosts
	model.Machine = *vms
	model.Datastore = *datastores
	model.Portgroup = 0
	model.DelayConfig.MethodDelay = delays
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	defer model.Remove()

	cert, pemBytes, err := selfSignedCert()
	if err != nil {
		log.Fatal(err)
	}
	if *certOut != "" {
		if err := os.WriteFile(*certOut, pemBytes, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}

	installSafeFetch()
	installCSVPerformanceManager()
	repairEventTemplates()
	stm := installScheduledTaskManager()

	server := model.Service.NewServer()
	defer server.Close()

	hooks := &hooks{inner: server.Config.Handler, faults: map[string][]*fault{}}
	server.Config.Handler = hooks
	stm.url = server.URL
	hooks.url = server.URL

	sdk := *server.URL
	sdk.User = nil
	fmt.Println(sdk.String())
	os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}

// selfSignedCert makes a CA-capable certificate for 127.0.0.1/localhost, so that clients verify TLS.
func selfSignedCert() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "cotenancy vcsim", Organization: []string{"cotenancy tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyDer, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPem := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPem := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDer})
	cert, err := tls.X509KeyPair(certPem, keyPem)
	return cert, certPem, err
}

// ---------------------------------------------------------------------------------------------
// Fetch of unset properties

// SafePropertyCollector answers Fetch of an unset property with an empty result, as vCenter does,
// instead of panicking (govmomi 0.24 indexes an empty MissingSet).
type SafePropertyCollector struct {
	simulator.PropertyCollector
}

type fetchResponse struct {
	Returnval types.AnyType `xml:"returnval,omitempty,typeattr"`
}

type fetchBody struct {
	Res    *fetchResponse `xml:"urn:vim25 FetchResponse,omitempty"`
	Fault_ *soap.Fault    `xml:"http://schemas.xmlsoap.org/soap/envelope/ Fault,omitempty"`
}

func (b *fetchBody) Fault() *soap.Fault { return b.Fault_ }

// Fetch takes the request as interface{}: its type lives in an internal package of the simulator.
func (pc *SafePropertyCollector) Fetch(ctx *simulator.Context, req interface{}) soap.HasFault {
	rv := reflect.ValueOf(req).Elem()
	this := rv.FieldByName("This").Interface().(types.ManagedObjectReference)
	prop := rv.FieldByName("Prop").String()
	if !(this == vim25.ServiceInstance && prop == "content") && ctx.Map.Get(this) != nil {
		res := pc.RetrievePropertiesEx(ctx, &types.RetrievePropertiesEx{
			SpecSet: []types.PropertyFilterSpec{{
				PropSet:   []types.PropertySpec{{Type: this.Type, PathSet: []string{prop}}},
				ObjectSet: []types.ObjectSpec{{Obj: this}},
			}},
		})
		if res.Fault() != nil {
			return res
		}
		ret := res.(*methods.RetrievePropertiesExBody).Res.Returnval
		if ret == nil || len(ret.Objects) == 0 ||
			(len(ret.Objects[0].PropSet) == 0 && len(ret.Objects[0].MissingSet) == 0) {
			return &fetchBody{Res: &fetchResponse{}}
		}
	}
	out := reflect.ValueOf(&pc.PropertyCollector).MethodByName("Fetch").Call(
		[]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(req)})
	return out[0].Interface().(soap.HasFault)
}

func installSafeFetch() {
	ref := simulator.Map.Get(model.ServiceContent.PropertyCollector).Reference()
	pc := &SafePropertyCollector{}
	pc.Self = ref
	simulator.Map.Put(pc)
}

// CSVPerformanceManager answers QueryPerf specs with format "csv" as vCenter does (0.24 ignores
// the format): one string per series instead of one XML element per sample.
type CSVPerformanceManager struct {
	simulator.PerformanceManager
}

func installCSVPerformanceManager() {
	orig := simulator.Map.Get(*model.ServiceContent.PerfManager).(*simulator.PerformanceManager)
	simulator.Map.Put(&CSVPerformanceManager{*orig})
}

func (p *CSVPerformanceManager) QueryPerf(ctx *simulator.Context, req *types.QueryPerf) soap.HasFault {
	res := p.PerformanceManager.QueryPerf(ctx, req)
	body, ok := res.(*methods.QueryPerfBody)
	if !ok || body.Fault_ != nil || body.Res == nil {
		return res
	}
	for i, qs := range req.QuerySpec {
		metric, ok := body.Res.Returnval[i].(*types.PerfEntityMetric)
		if qs.Format != string(types.PerfFormatCsv) || !ok {
			continue
		}
		info := make([]string, 0, 2*len(metric.SampleInfo))
		for _, s := range metric.SampleInfo {
			info = append(info, strconv.Itoa(int(s.Interval)), s.Timestamp.UTC().Format(time.RFC3339Nano))
		}
		csv := &types.PerfEntityMetricCSV{SampleInfoCSV: strings.Join(info, ",")}
		csv.Entity = metric.Entity
		for _, series := range metric.Value {
			ints, ok := series.(*types.PerfMetricIntSeries)
			if !ok {
				continue
			}
			values := make([]string, len(ints.Value))
			for j, v := range ints.Value {
				values[j] = strconv.FormatInt(v, 10)
			}
			csv.Value = append(csv.Value, types.PerfMetricSeriesCSV{
				PerfMetricSeries: types.PerfMetricSeries{Id: ints.Id},
				Value:            strings.Join(values, ","),
			})
		}
		body.Res.Returnval[i] = csv
	}
	return body
}

// repairEventTemplates replaces event message templates that text/template cannot parse (e.g.
// VmMigratedEvent's in 0.24): posting such an event would panic.
func repairEventTemplates() {
	em := simulator.Map.EventManager()
	for i := range em.Description.EventInfo {
		info := &em.Description.EventInfo[i]
		if _, err := template.New(info.Key).Parse(info.FullFormat); err != nil {
			info.FullFormat = info.Key
		}
		if info.Key == "VmMigratedEvent" {
			info.FullFormat = "Migration of virtual machine {{.Vm.Name}} from {{.SourceHost.Name}} to {{.Host.Name}} completed"
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Scheduled tasks (simulated: govmomi 0.24 has no ScheduledTaskManager)

type ScheduledTaskManager struct {
	mo.ScheduledTaskManager

	url   *url.URL
	mu    sync.Mutex
	count int
}

type ScheduledTask struct {
	mo.ScheduledTask

	manager *ScheduledTaskManager
	timer   *time.Timer
}

// supportedActions are the methods a MethodAction may name.
var supportedActions = map[string]bool{
	"RelocateVM_Task": true, "ReconfigVM_Task": true, "PowerOnVM_Task": true, "PowerOffVM_Task": true,
	"EnterMaintenanceMode_Task": true, "ExitMaintenanceMode_Task": true,
}

func installScheduledTaskManager() *ScheduledTaskManager {
	m := &ScheduledTaskManager{}
	m.Self = *model.ServiceContent.ScheduledTaskManager
	simulator.Map.Put(m)
	return m
}

func invalidSpec(msg string) *soap.Fault {
	return simulator.Fault(msg, &types.InvalidArgument{InvalidProperty: msg})
}

func validateSpec(entity types.ManagedObjectReference, spec types.BaseScheduledTaskSpec) *soap.Fault {
	if simulator.Map.Get(entity) == nil {
		return simulator.Fault("", &types.ManagedObjectNotFound{Obj: entity})
	}
	s := spec.GetScheduledTaskSpec()
	if s.Name == "" {
		return invalidSpec("spec.name")
	}
	action, ok := s.Action.(*types.MethodAction)
	if !ok || !supportedActions[action.Name] {
		return invalidSpec("spec.action")
	}
	if _, ok := s.Scheduler.(*types.OnceTaskScheduler); !ok {
		return invalidSpec("spec.scheduler")
	}
	return nil
}

func (m *ScheduledTaskManager) CreateScheduledTask(req *types.CreateScheduledTask) soap.HasFault {
	body := &methods.CreateScheduledTaskBody{}
	if f := validateSpec(req.Entity, req.Spec); f != nil {
		body.Fault_ = f
		return body
	}
	spec := req.Spec.GetScheduledTaskSpec()
	for _, ref := range m.ScheduledTask {
		if st, ok := simulator.Map.Get(ref).(*ScheduledTask); ok && st.Info.Name == spec.Name {
			body.Fault_ = simulator.Fault("", &types.DuplicateName{Name: spec.Name, Object: ref})
			return body
		}
	}
	m.mu.Lock()
	m.count++
	n := m.count
	m.mu.Unlock()

	st := &ScheduledTask{manager: m}
	st.Self = types.ManagedObjectReference{Type: "ScheduledTask", Value: fmt.Sprintf("schedtask-%d", n)}
	st.Info = types.ScheduledTaskInfo{
		ScheduledTaskSpec: *spec,
		ScheduledTask:     st.Self,
		Entity:            req.Entity,
		LastModifiedTime:  vcNow(),
		LastModifiedUser:  "vcsim",
		State:             types.TaskInfoStateQueued,
	}
	simulator.Map.Put(st)
	m.ScheduledTask = append(m.ScheduledTask, st.Self) // the call holds m's lock already
	st.schedule()

	body.Res = &types.CreateScheduledTaskResponse{Returnval: st.Self}
	return body
}

func (m *ScheduledTaskManager) RetrieveEntityScheduledTask(req *types.RetrieveEntityScheduledTask) soap.HasFault {
	var refs []types.ManagedObjectReference
	for _, ref := range m.ScheduledTask {
		st, ok := simulator.Map.Get(ref).(*ScheduledTask)
		if ok && (req.Entity == nil || st.Info.Entity == *req.Entity) {
			refs = append(refs, ref)
		}
	}
	return &methods.RetrieveEntityScheduledTaskBody{
		Res: &types.RetrieveEntityScheduledTaskResponse{Returnval: refs},
	}
}

// schedule arms a timer for the once-scheduler's runAt (now when unset), if the task is enabled.
func (st *ScheduledTask) schedule() {
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	once := st.Info.Scheduler.(*types.OnceTaskScheduler)
	at := vcNow()
	if once.RunAt != nil {
		at = *once.RunAt
	}
	if !st.Info.Enabled {
		simulator.Map.Update(st, []types.PropertyChange{{Name: "info.nextRunTime", Val: nil}})
		return
	}
	simulator.Map.Update(st, []types.PropertyChange{{Name: "info.nextRunTime", Val: at}})
	ref := st.Self
	st.timer = time.AfterFunc(at.Sub(vcNow()), func() { runScheduled(ref) })
}

func (st *ScheduledTask) RunScheduledTask(req *types.RunScheduledTask) soap.HasFault {
	body := &methods.RunScheduledTaskBody{}
	if st.Info.State == types.TaskInfoStateRunning {
		body.Fault_ = simulator.Fault("", &types.InvalidState{})
		return body
	}
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	go runScheduled(st.Self)
	body.Res = &types.RunScheduledTaskResponse{}
	return body
}

func (st *ScheduledTask) RemoveScheduledTask(req *types.RemoveScheduledTask) soap.HasFault {
	if st.timer != nil {
		st.timer.Stop()
	}
	simulator.Map.RemoveReference(st.manager, &st.manager.ScheduledTask, st.Self)
	simulator.Map.Remove(st.Self)
	return &methods.RemoveScheduledTaskBody{Res: &types.RemoveScheduledTaskResponse{}}
}

func (st *ScheduledTask) ReconfigureScheduledTask(req *types.ReconfigureScheduledTask) soap.HasFault {
	body := &methods.ReconfigureScheduledTaskBody{}
	if f := validateSpec(st.Info.Entity, req.Spec); f != nil {
		body.Fault_ = f
		return body
	}
	st.Info.ScheduledTaskSpec = *req.Spec.GetScheduledTaskSpec()
	st.Info.LastModifiedTime = vcNow()
	st.schedule()
	body.Res = &types.ReconfigureScheduledTaskResponse{}
	return body
}

// runScheduled invokes the task's method through the SOAP API as a client would, so that method
// delays, injected faults and events apply to scheduled runs too, and records the outcome in info.
func runScheduled(ref types.ManagedObjectReference) {
	st, ok := simulator.Map.Get(ref).(*ScheduledTask)
	if !ok {
		return
	}
	now := vcNow()
	simulator.Map.Update(st, []types.PropertyChange{
		{Name: "info.state", Val: types.TaskInfoStateRunning},
		{Name: "info.prevRunTime", Val: now},
		{Name: "info.nextRunTime", Val: nil},
		{Name: "info.error", Val: nil},
	})
	taskRef, result, failure := invokeAction(st.manager.url, st.Info.Entity, st.Info.Action.(*types.MethodAction), func(t types.ManagedObjectReference) {
		simulator.Map.Update(st, []types.PropertyChange{{Name: "info.activeTask", Val: t}})
	})
	state := types.TaskInfoStateSuccess
	changes := []types.PropertyChange{{Name: "info.activeTask", Val: nil}}
	if taskRef != nil {
		changes = append(changes, types.PropertyChange{Name: "info.taskObject", Val: *taskRef})
	}
	if failure != nil {
		state = types.TaskInfoStateError
		changes = append(changes, types.PropertyChange{Name: "info.error", Val: *failure})
	} else if result != nil {
		changes = append(changes, types.PropertyChange{Name: "info.result", Val: result})
	}
	changes = append(changes, types.PropertyChange{Name: "info.state", Val: state})
	simulator.Map.Update(st, changes)
}

func localizedFault(err error) *types.LocalizedMethodFault {
	if soap.IsSoapFault(err) {
		if f, ok := soap.ToSoapFault(err).VimFault().(types.BaseMethodFault); ok {
			return &types.LocalizedMethodFault{Fault: f, LocalizedMessage: err.Error()}
		}
	}
	if te, ok := err.(task.Error); ok {
		return te.LocalizedMethodFault
	}
	return &types.LocalizedMethodFault{Fault: &types.SystemError{Reason: err.Error()}, LocalizedMessage: err.Error()}
}

func argument(action *types.MethodAction, i int) types.AnyType {
	if i < len(action.Argument) {
		return action.Argument[i].Value
	}
	return nil
}

func invokeAction(u *url.URL, entity types.ManagedObjectReference, action *types.MethodAction,
	started func(types.ManagedObjectReference)) (*types.ManagedObjectReference, types.AnyType, *types.LocalizedMethodFault) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	client, err := govmomi.NewClient(ctx, u, true)
	if err != nil {
		return nil, nil, localizedFault(err)
	}
	defer client.Logout(context.Background())

	var ref types.ManagedObjectReference
	switch action.Name {
	case "RelocateVM_Task":
		spec, ok := argument(action, 0).(types.VirtualMachineRelocateSpec)
		if !ok {
			return nil, nil, &types.LocalizedMethodFault{Fault: &types.InvalidArgument{InvalidProperty: "spec"}}
		}
		res, e := methods.RelocateVM_Task(ctx, client, &types.RelocateVM_Task{This: entity, Spec: spec})
		if err = e; e == nil {
			ref = res.Returnval
		}
	case "ReconfigVM_Task":
		spec, ok := argument(action, 0).(types.VirtualMachineConfigSpec)
		if !ok {
			return nil, nil, &types.LocalizedMethodFault{Fault: &types.InvalidArgument{InvalidProperty: "spec"}}
		}
		res, e := methods.ReconfigVM_Task(ctx, client, &types.ReconfigVM_Task{This: entity, Spec: spec})
		if err = e; e == nil {
			ref = res.Returnval
		}
	case "PowerOnVM_Task":
		res, e := methods.PowerOnVM_Task(ctx, client, &types.PowerOnVM_Task{This: entity})
		if err = e; e == nil {
			ref = res.Returnval
		}
	case "PowerOffVM_Task":
		res, e := methods.PowerOffVM_Task(ctx, client, &types.PowerOffVM_Task{This: entity})
		if err = e; e == nil {
			ref = res.Returnval
		}
	case "EnterMaintenanceMode_Task":
		res, e := methods.EnterMaintenanceMode_Task(ctx, client, &types.EnterMaintenanceMode_Task{This: entity})
		if err = e; e == nil {
			ref = res.Returnval
		}
	case "ExitMaintenanceMode_Task":
		res, e := methods.ExitMaintenanceMode_Task(ctx, client, &types.ExitMaintenanceMode_Task{This: entity})
		if err = e; e == nil {
			ref = res.Returnval
		}
	}
	if err != nil {
		return nil, nil, localizedFault(err)
	}
	started(ref)
	info, err := object.NewTask(client.Client, ref).WaitForResult(ctx, nil)
	if err != nil {
		if info != nil && info.Error != nil {
			return &ref, nil, info.Error
		}
		return &ref, nil, localizedFault(err)
	}
	return &ref, info.Result, nil
}

// ---------------------------------------------------------------------------------------------
// HTTP hooks: fault injection, migration events

type fault struct {
	this    string
	fault   string
	delayMs int
	count   int
}

type hooks struct {
	inner  http.Handler
	url    *url.URL
	mu     sync.Mutex
	faults map[string][]*fault
}

func (h *hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/vcsim/fault":
		h.serveFault(w, r)
	case r.URL.Path == "/vcsim/delay":
		h.serveDelay(w, r)
	case r.URL.Path == "/vcsim/clock":
		serveClock(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/sdk":
		h.serveSDK(w, r)
	default:
		h.inner.ServeHTTP(w, r)
	}
}

// serveFault arms (POST) or clears (DELETE) injected outcomes of methods:
// POST /vcsim/fault?method=RelocateVM_Task&fault=MigrationFault&delay_ms=0&count=1[&this=vm-42]
// The next count calls of a *_Task method return a task that, after delay_ms, fails with the named
// fault or (without fault) carries out the real call; those of another method (e.g.
// RemoveScheduledTask) answer with the named fault itself, as vCenter refuses a call.
func (h *hooks) serveFault(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Method == http.MethodDelete {
		h.faults = map[string][]*fault{}
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "use POST or DELETE", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	method := q.Get("method")
	f := &fault{this: q.Get("this"), fault: q.Get("fault"), count: 1}
	if method == "" || (!strings.HasSuffix(method, "_Task") && f.fault == "") {
		http.Error(w, "want method=Name, and fault=Type unless the method is a *_Task", http.StatusBadRequest)
		return
	}
	if f.fault != "" {
		if _, ok := types.TypeFunc()(f.fault); !ok {
			http.Error(w, "unknown fault type "+f.fault, http.StatusBadRequest)
			return
		}
	}
	var err error
	if v := q.Get("delay_ms"); v != "" {
		if f.delayMs, err = strconv.Atoi(v); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	if v := q.Get("count"); v != "" {
		if f.count, err = strconv.Atoi(v); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	h.faults[method] = append(h.faults[method], f)
}

// serveDelay sets model.DelayConfig.MethodDelay[method] (copy-on-write: the simulator reads it unlocked).
func (h *hooks) serveDelay(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	ms, err := strconv.Atoi(q.Get("ms"))
	if err != nil || q.Get("method") == "" {
		http.Error(w, "want method=Name&ms=N", http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	next := map[string]int{}
	for k, v := range model.DelayConfig.MethodDelay {
		next[k] = v
	}
	if ms > 0 {
		next[q.Get("method")] = ms
	} else {
		delete(next, q.Get("method"))
	}
	model.DelayConfig.MethodDelay = next
}

// serveClock sets how far (seconds, may be negative) vCenter's clock runs ahead of this host's:
// POST /vcsim/clock?offset_s=-7200
func serveClock(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	seconds, err := strconv.ParseFloat(r.URL.Query().Get("offset_s"), 64)
	if err != nil {
		http.Error(w, "want offset_s=N", http.StatusBadRequest)
		return
	}
	atomic.StoreInt64(&clockOffset, int64(seconds*float64(time.Second)))
}

// serveCurrentTime answers ServiceInstance.CurrentTime with the simulated vCenter's (skewed) time;
// the simulator's own answer is this host's time.
func serveCurrentTime(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" `+
		`xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`+
		`<soapenv:Body><CurrentTimeResponse xmlns="urn:vim25"><returnval>%s</returnval></CurrentTimeResponse>`+
		`</soapenv:Body></soapenv:Envelope>`, vcNow().UTC().Format(time.RFC3339Nano))
}

func (h *hooks) takeFault(method, this string) *fault {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, f := range h.faults[method] {
		if f.count > 0 && (f.this == "" || f.this == this) {
			f.count--
			return f
		}
	}
	return nil
}

// soapCall finds the method name and _this of a SOAP request body.
func soapCall(body []byte) (string, types.ManagedObjectReference) {
	var method string
	var this types.ManagedObjectReference
	dec := xml.NewDecoder(bytes.NewReader(body))
	inBody := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return method, this
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case start.Name.Local == "Body":
			inBody = true
		case inBody && method == "":
			method = start.Name.Local
		case method != "" && start.Name.Local == "_this":
			for _, a := range start.Attr {
				if a.Name.Local == "type" {
					this.Type = a.Value
				}
			}
			var text string
			if dec.DecodeElement(&text, &start) == nil {
				this.Value = strings.TrimSpace(text)
			}
			return method, this
		}
	}
}

func (h *hooks) serveSDK(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	method, this := soapCall(body)

	if method == "CurrentTime" {
		serveCurrentTime(w)
		return
	}
	if f := h.takeFault(method, this.Value); f != nil && simulator.Map.Get(this) != nil {
		if !strings.HasSuffix(method, "_Task") {
			refused(w, method, f.fault)
			return
		}
		h.injected(w, r, body, method, this, f)
		return
	}
	if method != "RelocateVM_Task" {
		h.inner.ServeHTTP(w, r)
		return
	}
	source := vmHost(this)
	rec := httptest.NewRecorder()
	h.inner.ServeHTTP(rec, r)
	h.afterRelocate(this, source, rec.Body.Bytes())
	copyResponse(w, rec)
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func vmHost(ref types.ManagedObjectReference) *types.ManagedObjectReference {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return nil
	}
	var host *types.ManagedObjectReference
	simulator.Map.WithLock(vm, func() {
		if vm.Runtime.Host != nil {
			h := *vm.Runtime.Host
			host = &h
		}
	})
	return host
}

// taskInResponse finds the returned Task of a *_Task response.
func taskInResponse(body []byte) *simulator.Task {
	dec := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		if start, ok := tok.(xml.StartElement); ok && start.Name.Local == "returnval" {
			var text string
			if dec.DecodeElement(&text, &start) != nil {
				return nil
			}
			t, _ := simulator.Map.Get(types.ManagedObjectReference{Type: "Task", Value: strings.TrimSpace(text)}).(*simulator.Task)
			return t
		}
	}
}

// afterRelocate fixes HostSystem.vm lists (0.24 removes the target from itself) and posts a
// VmMigratedEvent, as vCenter does, once the relocation task succeeded.
func (h *hooks) afterRelocate(vmRef types.ManagedObjectReference, source *types.ManagedObjectReference, response []byte) {
	t := taskInResponse(response)
	if t == nil || source == nil {
		return
	}
	var state types.TaskInfoState
	simulator.Map.WithLock(t, func() { state = t.Info.State })
	target := vmHost(vmRef)
	if state != types.TaskInfoStateSuccess || target == nil || *target == *source {
		return
	}
	src, _ := simulator.Map.Get(*source).(*simulator.HostSystem)
	dst, _ := simulator.Map.Get(*target).(*simulator.HostSystem)
	vm, _ := simulator.Map.Get(vmRef).(*simulator.VirtualMachine)
	if src == nil || dst == nil || vm == nil {
		return
	}
	simulator.Map.RemoveReference(src, &src.Vm, vmRef)
	simulator.Map.AddReference(dst, &dst.Vm, vmRef)

	event := &types.VmMigratedEvent{
		VmEvent: types.VmEvent{Event: types.Event{
			Host: &types.HostEventArgument{Host: dst.Self, EntityEventArgument: types.EntityEventArgument{Name: dst.Name}},
			Vm:   &types.VmEventArgument{Vm: vmRef, EntityEventArgument: types.EntityEventArgument{Name: vm.Name}},
		}},
		SourceHost: types.HostEventArgument{Host: src.Self, EntityEventArgument: types.EntityEventArgument{Name: src.Name}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := govmomi.NewClient(ctx, h.url, true)
	if err != nil {
		log.Printf("posting migration event: %v", err)
		return
	}
	defer client.Logout(context.Background())
	if _, err := methods.PostEvent(ctx, client, &types.PostEvent{
		This: *client.ServiceContent.EventManager, EventToPost: event,
	}); err != nil {
		log.Printf("posting migration event: %v", err)
	}
}

// vcenterTaskIds are vCenter's TaskInfo.descriptionId of the methods whose tasks can be injected
// (0.24's own tasks say e.g. "VirtualMachine.relocateVm"); clients find running migrations by them.
var vcenterTaskIds = map[string]string{
	"RelocateVM_Task":           "VirtualMachine.relocate",
	"MigrateVM_Task":            "VirtualMachine.migrate",
	"ReconfigVM_Task":           "VirtualMachine.reconfigure",
	"PowerOnVM_Task":            "VirtualMachine.powerOn",
	"PowerOffVM_Task":           "VirtualMachine.powerOff",
	"EnterMaintenanceMode_Task": "HostSystem.enterMaintenanceMode",
	"ExitMaintenanceMode_Task":  "HostSystem.exitMaintenanceMode",
}

// refused answers a call with the armed vim fault (its fields unset), as vCenter answers a call it
// refuses (NoPermission, ManagedObjectNotFound, ...).
func refused(w http.ResponseWriter, method, fault string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" `+
		`xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`+
		`<soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode>`+
		`<faultstring>%s refused (injected %s)</faultstring>`+
		`<detail><%sFault xmlns="urn:vim25" xsi:type="%s"></%sFault></detail>`+
		`</soapenv:Fault></soapenv:Body></soapenv:Envelope>`, method, fault, fault, fault, fault)
}

// injected answers a *_Task call with a task of our own: it waits delay_ms, then fails with the
// armed fault, or (no fault) performs the real call and mirrors its outcome.
func (h *hooks) injected(w http.ResponseWriter, r *http.Request, body []byte, method string,
	this types.ManagedObjectReference, f *fault) {
	entity := simulator.Map.Get(this)
	header := r.Header.Clone()
	name := strings.TrimSuffix(method, "_Task")
	name = strings.ToLower(name[:1]) + name[1:]
	injectedTask := simulator.CreateTask(entity, name, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		time.Sleep(time.Duration(f.delayMs) * time.Millisecond)
		if f.fault != "" {
			t, _ := types.TypeFunc()(f.fault)
			mf, ok := reflect.New(t).Interface().(types.BaseMethodFault)
			if !ok {
				return nil, &types.SystemError{Reason: f.fault + " is not a method fault"}
			}
			return nil, mf
		}
		inner, _ := http.NewRequest(http.MethodPost, r.URL.String(), bytes.NewReader(body))
		inner.Header = header
		source := vmHost(this)
		rec := httptest.NewRecorder()
		h.inner.ServeHTTP(rec, inner)
		if method == "RelocateVM_Task" {
			h.afterRelocate(this, source, rec.Body.Bytes())
		}
		t := taskInResponse(rec.Body.Bytes())
		if t == nil {
			return nil, &types.SystemError{Reason: "call failed: " + rec.Body.String()}
		}
		var info types.TaskInfo
		simulator.Map.WithLock(t, func() { info = t.Info })
		if info.Error != nil {
			return nil, info.Error.Fault
		}
		return info.Result, nil
	})
	if id, ok := vcenterTaskIds[method]; ok {
		simulator.Map.WithLock(injectedTask, func() {
			injectedTask.Info.Name = method
			injectedTask.Info.DescriptionId = id
		})
	}
	go injectedTask.Run()

	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" `+
		`xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`+
		`<soapenv:Body><%sResponse xmlns="urn:vim25"><returnval type="Task">%s</returnval></%sResponse>`+
		`</soapenv:Body></soapenv:Envelope>`, method, injectedTask.Self.Value, method)
}

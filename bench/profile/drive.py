# Driver for bench/profile/callgrind.sh: keep-alive HTTPS clients (stdlib only)
# that run warm-up creates, then POST / GET-by-id / filter phases, asking
# callgrind (callgrind_control) to zero and dump its counters around each.
# Usage: drive.py PORT TOKEN REQUESTS CLIENTS [VALGRIND_PID]
import ssl, http.client, json, sys, threading, subprocess, time
port=int(sys.argv[1]); tok=sys.argv[2]; n=int(sys.argv[3]); threads=int(sys.argv[4]); ctl=sys.argv[5] if len(sys.argv)>5 else None
ctx=ssl.create_default_context(); ctx.check_hostname=False; ctx.verify_mode=ssl.CERT_NONE
H={"authorization":"Bearer "+tok,"accept":"application/scim+json","host":"localhost"}
ids=[]; lock=threading.Lock()
def conn(): return http.client.HTTPSConnection("127.0.0.1",port,context=ctx)
def body(i):
    e=f"user{i}@example.com"
    return json.dumps({"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":e,"externalId":f"00u{i:012}","name":{"givenName":f"Given{i}","familyName":f"Family{i}"},"displayName":f"Given{i} Family{i}","emails":[{"primary":True,"value":e,"type":"work"}],"active":True})
def run(fn,off=0):
    per=n//threads
    def w(t):
        c=conn()
        for k in range(per): fn(c,off+t*per+k)
    ts=[threading.Thread(target=w,args=(t,)) for t in range(threads)]
    # pre-connect handshake outside measured? handshake happens on first request; included once per thread
    [x.start() for x in ts]; [x.join() for x in ts]
base=[int(sys.argv[6]) if len(sys.argv)>6 else 0]
def post(c,i):
    h=dict(H); h["content-type"]="application/scim+json"
    c.request("POST","/scim/v2/Users",body=body(base[0]+i),headers=h); r=c.getresponse(); d=r.read()
    assert r.status==201,(r.status,d)
    with lock: ids.append(json.loads(d)["id"])
def get(c,i):
    c.request("GET","/scim/v2/Users/"+ids[(i*7919)%len(ids)],headers=H); r=c.getresponse(); d=r.read(); assert r.status==200,(r.status,d)
def filt(c,i):
    c.request("GET",f"/scim/v2/Users?filter=userName%20eq%20%22user{base[0]+(i%len(ids))}%40example.com%22",headers=H); r=c.getresponse(); d=r.read(); assert r.status==200,(r.status,d)
def cg(what):
    if ctl: subprocess.run(["callgrind_control",what,ctl],stdout=subprocess.DEVNULL)
# warm: a few posts
run(post)  # warm-up n posts (also creates ids)
cg("-z"); t=time.time(); run(post,n); print("post",n/(time.time()-t)); cg("-d")
cg("-z"); t=time.time(); run(get); print("get",n/(time.time()-t)); cg("-d")
cg("-z"); t=time.time(); run(filt); print("filter",n/(time.time()-t)); cg("-d")

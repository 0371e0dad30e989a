// A candidate measured for issue 15, not shipped: the floor of a Go front built from the
// standard library only. It passes /invocations through to one upstream URL over pooled
// keep-alive connections and answers /ping 200; none of the front's checks.
//
//	go build -o goproxy goproxy.go && ./goproxy -listen 127.0.0.1:9003 -upstream URL
package main

import (
	"bytes"
	"flag"
	"io"
	"log"
	"net/http"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9003", "address to serve")
	upstream := flag.String("upstream", "", "URL every /invocations goes to")
	flag.Parse()
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64,
			IdleConnTimeout: 60 * time.Second, DisableCompression: true},
		Timeout: 50 * time.Second,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("{}"))
	})
	mux.HandleFunc("/invocations", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 6<<20+1))
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		req, _ := http.NewRequest("POST", *upstream, bytes.NewReader(body))
		req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), 503)
			return
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		w.Write(answer)
	})
	log.Fatal(http.ListenAndServe(*listen, mux))
}

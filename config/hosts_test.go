package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseDatabaseHosts(t *testing.T) {
	tests := []struct {
		name, in  string
		want      []Endpoint
		host      string // Database.Host as stored
		attrs, lb string // effective values
		str       string // Database.String()
		wantErr   string
	}{
		{name: "one host", in: "host=db port=6000",
			want: []Endpoint{{"db", 6000}}, host: "db", attrs: "any", lb: "round-robin", str: "host=db port=6000 dbname=x"},
		{name: "no host", in: "dbname=y",
			want: []Endpoint{{"", 5432}}, host: "", attrs: "any", lb: "round-robin", str: "port=5432 dbname=y"},
		{name: "list, one port", in: "host=h1,h2,h3 port=5433",
			want: []Endpoint{{"h1", 5433}, {"h2", 5433}, {"h3", 5433}}, host: "h1,h2,h3", attrs: "any", lb: "round-robin"},
		{name: "list, default port", in: "host=h1,h2",
			want: []Endpoint{{"h1", 5432}, {"h2", 5432}}, host: "h1,h2", attrs: "any", lb: "round-robin"},
		{name: "port per host, port first", in: "port=5432,5433,5434 host=a,b,c",
			want: []Endpoint{{"a", 5432}, {"b", 5433}, {"c", 5434}}, host: "a,b,c", attrs: "any", lb: "round-robin",
			str: "host=a,b,c port=5432,5433,5434 dbname=x"},
		{name: "IPv6 addresses and names", in: "host=::1,[fd00::2],top2.nearest.of.app.internal port=5433,5433,5432 target_session_attrs=read-write",
			want: []Endpoint{{"::1", 5433}, {"fd00::2", 5433}, {"top2.nearest.of.app.internal", 5432}},
			host: "::1,fd00::2,top2.nearest.of.app.internal", attrs: "read-write", lb: "round-robin",
			str: "host=::1,fd00::2,top2.nearest.of.app.internal port=5433,5433,5432 dbname=x target_session_attrs=read-write"},
		{name: "blanks in the list", in: "host='h1, h2' port='1, 2'",
			want: []Endpoint{{"h1", 1}, {"h2", 2}}, host: "h1,h2", attrs: "any", lb: "round-robin"},
		{name: "unix socket dirs", in: "host=/run/a,/run/b",
			want: []Endpoint{{"/run/a", 5432}, {"/run/b", 5432}}, host: "/run/a,/run/b", attrs: "any", lb: "round-robin"},
		{name: "every attrs value", in: "host=a,b target_session_attrs=PREFER-STANDBY load_balance_hosts=disable",
			want: []Endpoint{{"a", 5432}, {"b", 5432}}, host: "a,b", attrs: "prefer-standby", lb: "disable"},
		{name: "ports do not match hosts", in: "host=a,b,c port=1,2", wantErr: "port lists 2 ports for 3 hosts: give one port for all, or one per host"},
		{name: "port list without host list", in: "port=1,2", wantErr: "port lists 2 ports for 1 hosts: give one port for all, or one per host"},
		{name: "bad port in list", in: "host=a,b port=1,x", wantErr: `port: "x" is not an integer`},
		{name: "port out of range", in: "host=a,b port=1,70000", wantErr: "port: 70000 is out of range (1..65535)"},
		{name: "empty host in list", in: "host=a,,b", wantErr: `host: host list "a,,b": host 2 is empty`},
		{name: "bad attrs", in: "target_session_attrs=master", wantErr: `target_session_attrs: "master" is not one of any, read-write, read-only, primary, standby, prefer-standby`},
		{name: "bad balance", in: "load_balance_hosts=random", wantErr: `load_balance_hosts: "random" is not one of round-robin, disable`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, warnings, err := ParseDatabase("x", tt.in)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Empty(t, warnings)
			require.Equal(t, tt.want, d.Endpoints())
			require.Equal(t, tt.host, d.Host)
			require.Equal(t, tt.attrs, d.EffectiveTargetSessionAttrs())
			require.Equal(t, tt.lb, d.EffectiveLoadBalanceHosts())
			if tt.str != "" {
				require.Equal(t, tt.str, d.String())
			}
			// What String prints parses back to the same entry.
			again, _, err := ParseDatabase("x", d.String())
			require.NoError(t, err)
			require.Equal(t, d, again)
		})
	}
}

func TestHostKey(t *testing.T) {
	a, _, err := ParseDatabase("a", "host=h1,h2 port=5432")
	require.NoError(t, err)
	b, _, err := ParseDatabase("b", "host='h1, [h2]' port=5432,5432 dbname=other target_session_attrs=standby")
	require.NoError(t, err)
	c, _, err := ParseDatabase("c", "host=h1,h2 port=5432,5433")
	require.NoError(t, err)
	require.Equal(t, a.HostKey(), b.HostKey(), "same servers, whatever else differs")
	require.NotEqual(t, a.HostKey(), c.HostKey())
}

func TestLoadMultiHost(t *testing.T) {
	c, _, err := loadString(t, "[databases]\napp = host=10.0.0.1,10.0.0.2 port=5433 target_session_attrs=primary\n")
	require.NoError(t, err)
	require.Empty(t, c.Warnings)
	require.Equal(t, []Endpoint{{"10.0.0.1", 5433}, {"10.0.0.2", 5433}}, c.Databases["app"].Endpoints())
	_, _, err = loadString(t, "[databases]\napp = host=a,b port=1,2,3\n")
	require.ErrorContains(t, err, "port lists 3 ports for 2 hosts")
}

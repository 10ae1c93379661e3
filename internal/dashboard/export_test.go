package dashboard

// The browser test (package dashboard_test) feeds the hub from the same fake.
type FakeEndpoints = fakeEndpoints

var NewFakeEndpoints = newFakeEndpoints

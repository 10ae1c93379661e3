package views

// SeriesByGet exposes seriesByGet to the benchmark.
var SeriesByGet = (*Windows).seriesByGet

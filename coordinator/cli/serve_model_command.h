#pragma once
// `strata serve-model`: a model directory served to the cluster's nodes by a
// process of its own (coordinator/cluster/model_server), for a machine that holds
// the model but is not the coordinator: `strata generate --distribute
// --model-server http://HOST:PORT` points the nodes at it.
namespace strata {

int ServeModel(int argc, char** argv);  // exit code

}  // namespace strata

// The classifier of the PyTorch C++ example cpp/mnist: two convolutions with max pooling, then
// two fully connected layers, with dropout after the second convolution and the first linear
// layer; log-probabilities out (trained with nll_loss). 28 x 28 x 1 in, 10 classes out.
#pragma once

#include <torch/torch.h>

struct Net : torch::nn::Module {
  Net() {
    register_module("conv1", conv1);
    register_module("conv2", conv2);
    register_module("conv2_drop", conv2_drop);
    register_module("fc1", fc1);
    register_module("fc2", fc2);
  }

  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(torch::max_pool2d(conv1->forward(x), 2));                       // 10 x 12 x 12
    x = torch::relu(torch::max_pool2d(conv2_drop->forward(conv2->forward(x)), 2));  // 20 x 4 x 4
    x = torch::relu(fc1->forward(x.view({-1, 320})));
    x = torch::dropout(x, /*p=*/0.5, /*train=*/is_training());
    return torch::log_softmax(fc2->forward(x), /*dim=*/1);
  }

  torch::nn::Conv2d conv1{torch::nn::Conv2dOptions(1, 10, /*kernel_size=*/5)};
  torch::nn::Conv2d conv2{torch::nn::Conv2dOptions(10, 20, /*kernel_size=*/5)};
  torch::nn::Dropout2d conv2_drop;
  torch::nn::Linear fc1{320, 50};
  torch::nn::Linear fc2{50, 10};
};
